// The Copy button next to a new share link.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-copy]");
    if (!button) return;
    const field = document.getElementById(button.dataset.copy);
    field.select();
    const done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { button.textContent = "Press Ctrl+C to copy"; });
    } else {
      // Plain-HTTP pages have no clipboard API: the text is selected for Ctrl+C instead.
      button.textContent = document.execCommand && document.execCommand("copy") ? "Copied" : "Press Ctrl+C to copy";
    }
  });
})();
