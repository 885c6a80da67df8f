// Small behaviours htmx does not cover: Enter to send, clearing the box, keeping the view
// at the newest message, and saying when the live connection is down.
(function () {
  "use strict";

  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 150;
  }

  document.addEventListener("keydown", function (event) {
    const box = event.target;
    if (box.id !== "message" || event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    if (box.value.trim()) box.form.requestSubmit();
  });

  // The box is emptied once a message is sent; if the server did not take it (too many
  // waiting, archived, ...), its notice says so and the text comes back into the box.
  let lastSent = "";
  document.addEventListener("htmx:wsAfterSend", function (event) {
    const form = document.getElementById("message-form");
    if (form && form.contains(event.target)) {
      lastSent = document.getElementById("message").value;
      form.reset();
      document.getElementById("message").focus();
    }
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    const flash = document.querySelector("#flash[data-refused]");
    const box = document.getElementById("message");
    if (flash && box && lastSent && !box.value) {
      box.value = lastSent;
      lastSent = "";
      flash.removeAttribute("data-refused");
    }
  });

  // A page that (re)connects gets the latest turns whole while fragments of the same moment may
  // still be on their way: an element that arrives a second time is the older copy; drop it.
  document.addEventListener("htmx:wsAfterMessage", function () {
    const seen = new Set();
    document.querySelectorAll("article[id^='turn-'], [id^='event-']").forEach(function (el) {
      if (seen.has(el.id)) el.remove();
      else seen.add(el.id);
    });
  });

  let stick = true;
  document.addEventListener("htmx:wsBeforeMessage", function () { stick = nearBottom(); });
  document.addEventListener("htmx:wsAfterMessage", function () {
    if (stick) window.scrollTo(0, document.body.scrollHeight);
  });

  function connection(text) {
    const el = document.getElementById("connection");
    if (el) el.textContent = text;
  }
  document.addEventListener("htmx:wsOpen", function () {
    connection("");
    document.body.dataset.ws = "open";
  });
  document.addEventListener("htmx:wsClose", function (event) {
    document.body.dataset.ws = "closed";
    const code = event.detail && event.detail.event && event.detail.event.code;
    if (code === 4401) connection("You are logged out (or your login expired): reload the page to log in again.");
    else if (code === 4404) connection("This chat no longer exists or is not yours.");
    else if (code === 4429) connection("Too many open tabs of this app: close some, then reload this page.");
    else connection("Connection lost: reconnecting… Your running turn goes on on the server.");
  });

  // Behaviours of plain forms, here rather than inline (the Content-Security-Policy allows no inline script).
  document.addEventListener("submit", function (event) {
    const question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });
  document.addEventListener("focusin", function (event) {
    if (event.target.classList && event.target.classList.contains("select-on-focus")) event.target.select();
  });

  window.addEventListener("load", function () { window.scrollTo(0, document.body.scrollHeight); });

  // A chat's socket (also when it reconnects) tells the server what the page shows: its last
  // turn and event, and the turns it shows unfinished. The server then sends only what is
  // missing instead of every recent turn again.
  function lastId(selector, prefix) {
    let last = 0;
    document.querySelectorAll(selector).forEach(function (el) {
      const id = parseInt(el.id.slice(prefix.length), 10);
      if (id > last) last = id;
    });
    return last;
  }
  function shown() {
    const unfinished = [];
    document.querySelectorAll("#turns .turn-status.status-queued, #turns .turn-status.status-waiting, #turns .turn-status.status-running, #turns .turn-status.status-asking")
      .forEach(function (el) { unfinished.push(parseInt(el.id.slice("turn-".length), 10)); });
    return "turn=" + lastId("#turns article.turn", "turn-") + "&event=" + lastId("#turns .event", "event-") +
      "&unfinished=" + unfinished.join(",");
  }
  if (window.htmx) {
    htmx.createWebSocket = function (url) {
      if (url.indexOf("/ws/chat/") >= 0 && document.getElementById("turns")) {
        url += (url.indexOf("?") < 0 ? "?" : "&") + shown();
      }
      const socket = new WebSocket(url, []);
      socket.binaryType = htmx.config.wsBinaryType;
      return socket;
    };
  }

  // Permission prompts: a browser notification when one arrives while the tab is hidden (if the
  // person allowed notifications; the "Notify me of prompts" button asks for that).
  const notified = new Set();
  document.addEventListener("htmx:wsAfterMessage", function () {
    document.querySelectorAll("[data-prompt]").forEach(function (el) {
      if (notified.has(el.id)) return;
      notified.add(el.id);
      if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return;
      const note = new Notification("Claude Code asks for permission", {
        body: "It wants to use " + el.dataset.prompt + ". Open the tab to allow or deny.", tag: el.id,
      });
      note.onclick = function () { window.focus(); note.close(); };
    });
  });
  function offerNotifications() {
    document.querySelectorAll("button.notify-prompts").forEach(function (button) {
      button.hidden = !("Notification" in window) || Notification.permission !== "default";
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-prompt]").forEach(function (el) { notified.add(el.id); });
    offerNotifications();
  });
  document.addEventListener("click", function (event) {
    if (!event.target.closest("button.notify-prompts")) return;
    Notification.requestPermission().then(offerNotifications);
  });

})();
