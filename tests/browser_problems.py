"""What went wrong in the browser while a test ran: a browser test fails on any of it, naming it.

Collected from every page of every context a test opens through the ``page`` and ``new_context``
fixtures: console errors (the browser's own, such as a failed resource or a Content-Security-Policy
violation, and the page's ``console.error``), uncaught exceptions, CSP violations as the page sees
them (which element or script, where), and htmx's error events (``htmx:oobErrorNoTarget``,
``htmx:swapError``, ``htmx:wsError``, ... every one of which htmx also announces as ``htmx:error``).
A test that provokes one on purpose (a 404 page it opens) says so with :meth:`Problems.allow`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from playwright.sync_api import BrowserContext, ConsoleMessage, Error

BINDING = "__testProblem"

# Runs in every page before its own scripts: reports what the console alone would not name.
WATCH = (
    """
(function () {
  const report = function (text) {
    try { window.BINDING(text); } catch (e) { /* the page is going away */ }
  };
  const describe = function (el) {
    if (!el || !el.tagName) return String(el);
    return el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
      (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\\s+/).join(".") : "");
  };
  document.addEventListener("securitypolicyviolation", function (event) {
    report("CSP violation: " + event.violatedDirective + " (" + (event.sample || "no sample") + ") by " +
      describe(event.target) + " from " + (event.sourceFile || "the page") + ":" + event.lineNumber +
      ":" + event.columnNumber);
  }, true);
  document.addEventListener("htmx:error", function (event) {
    const info = (event.detail && event.detail.errorInfo) || {};
    const target = info.target && info.target.tagName ? describe(info.target) : info.target;
    report("htmx error event " + info.error + (target ? " (target " + target + ")" : "") +
      (info.content ? " for " + describe(info.content) : "") + " on " + describe(event.target));
  }, true);
})();
"""
).replace("BINDING", BINDING)


@dataclass
class Problems:
    """Everything a test's pages reported; :meth:`unexpected` is what fails the test."""

    seen: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """A problem the test provokes on purpose (matched with ``re.search``)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [text for text in self.seen if not any(p.search(text) for p in self.allowed)]

    def watch(self, context: BrowserContext) -> BrowserContext:
        context.expose_binding(BINDING, lambda source, text: self.seen.append(f"{text} [{source['frame'].url}]"))
        context.add_init_script(WATCH)
        context.on("console", self._console)
        context.on("weberror", lambda error: self.seen.append(f"uncaught: {_error_text(error.error)}"))
        return context

    def _console(self, message: ConsoleMessage) -> None:
        if (
            message.type == "error"
            or "Content Security Policy" in message.text
            or "Content-Security-Policy" in message.text
        ):
            where = message.location.get("url", "") if message.location else ""
            self.seen.append(f"console {message.type}: {message.text} [{where}]")

    def settle(self, context: BrowserContext) -> None:
        """Let what the pages reported so far reach the test (events arrive while Playwright waits)."""
        for page in context.pages:
            try:
                page.evaluate("0")
            except Error:
                pass  # a page that is closing has nothing more to say


def _error_text(error: Error) -> str:
    return f"{error.name}: {error.message}" if error.name else error.message
