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

  document.addEventListener("htmx:wsAfterSend", function (event) {
    const form = document.getElementById("message-form");
    if (form && form.contains(event.target)) {
      form.reset();
      document.getElementById("message").focus();
    }
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
    if (code === 4401) connection("Your login has expired: reload the page to log in again.");
    else if (code === 4404) connection("This chat no longer exists or is not yours.");
    else connection("Connection lost: reconnecting… Your running turn goes on on the server.");
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
    document.querySelectorAll("#turns .turn-status.status-queued, #turns .turn-status.status-waiting, #turns .turn-status.status-running")
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
})();
