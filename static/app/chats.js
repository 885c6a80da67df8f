// The rename forms and the Copy button of a new share link.
(function () {
  "use strict";

  // "toggle" does not bubble: listen in the capture phase.
  document.addEventListener("toggle", function (event) {
    const details = event.target;
    if (!details.matches || !details.matches("details.rename") || !details.open) return;
    const input = details.querySelector("input[name=title]");
    const heading = document.getElementById("session-title");
    // The title may have changed since the page loaded (the first message sets it).
    if (details.id === "title-form" && heading && input.value === input.defaultValue) {
      input.value = heading.dataset.title || "";
    }
    input.focus();
    input.select();
  }, true);

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
