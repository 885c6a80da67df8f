// Reviewing a task's diff: a click on a line number picks that line for a comment, a shift-click
// on another number of the same file and side picks the lines between; the file's comment form
// then opens under it. The diff is swapped in by htmx, so the listeners sit on the document.
(function () {
  "use strict";

  let anchor = null; // the line number clicked first: {file, side, line}

  function rowsOf(details) { return details.querySelectorAll("button.ln"); }

  function mark(details, side, start, end) {
    rowsOf(details).forEach(function (button) {
      const line = parseInt(button.dataset.line, 10);
      const on = button.dataset.side === side && line >= start && line <= end;
      button.closest("td").classList.toggle("picked", on);
    });
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button.ln");
    if (button) {
      const details = button.closest("details.diff-file");
      const form = details && details.querySelector("form.comment-form");
      if (!form) return;
      const side = button.dataset.side;
      const line = parseInt(button.dataset.line, 10);
      let start = line;
      let end = line;
      if (event.shiftKey && anchor && anchor.file === details.id && anchor.side === side) {
        start = Math.min(anchor.line, line);
        end = Math.max(anchor.line, line);
      } else {
        anchor = { file: details.id, side: side, line: line };
      }
      form.elements.side.value = side;
      form.elements.start.value = String(start);
      form.elements.end.value = String(end);
      const where = start === end ? "line " + start : "lines " + start + "–" + end;
      form.querySelector(".comment-where").textContent =
        "Comment on " + details.dataset.path + ", " + where + " (" + side + " version)";
      mark(details, side, start, end);
      form.hidden = false;
      form.elements.text.focus();
      return;
    }
    const cancel = event.target.closest("button.comment-cancel");
    if (cancel) {
      const form = cancel.closest("form.comment-form");
      form.hidden = true;
      mark(form.closest("details.diff-file"), "", 1, 0);
      anchor = null;
    }
  });
})();
