// Small behaviours htmx does not cover: Enter to send, clearing the box, keeping the view
// at the newest message, and saying when the live connection is down.
(function () {
  "use strict";

  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 150;
  }

  // The New chat page's first message goes over the page's socket, which is open from the start;
  // the chat then comes in place of the page (no page load), and the address becomes the chat's.
  // Until the socket is open, and with files attached (uploaded with the form), the form posts.
  let socket = null;
  document.addEventListener("htmx:wsOpen", function (event) { socket = event.detail.socketWrapper; });
  document.addEventListener("htmx:wsClose", function () { socket = null; });
  function chosen(name) {
    const field = document.querySelector("#new-chat-form [name=" + name + "]");
    return field ? field.value : undefined;
  }
  let makingChat = false;
  let madeChat = false;
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.id !== "new-chat-form" || !socket || event.defaultPrevented) return;
    const files = document.getElementById("attach-files");
    if (files && files.files.length) return;
    event.preventDefault();
    if (makingChat || !form.message.value.trim()) return;
    makingChat = true;
    socket.send(JSON.stringify({ message: form.message.value, project: chosen("project"), model: chosen("model"),
                                 csrfmiddlewaretoken: chosen("csrfmiddlewaretoken") }), form);
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    const head = document.querySelector("#chat [data-chat-url]");
    if (head && window.location.pathname !== head.dataset.chatUrl) {
      window.history.pushState({ chat: head.dataset.chatUrl }, "", head.dataset.chatUrl);
      madeChat = true;
      const box = document.getElementById("message");
      if (box) box.focus();
    }
    if (document.getElementById("new-chat-form")) makingChat = false;  // refused: the page says why
  });
  // Back to the New chat page from the chat it made (or forward again): the page of that address, loaded.
  window.addEventListener("popstate", function () { if (madeChat) window.location.reload(); });

  // The first keystroke of a message has the chat's process started (it takes about half a
  // second), so that the message finds it warm; again at most every 10 s while typing.
  let aheadAt = 0;
  document.addEventListener("input", function (event) {
    if (!socket || !event.target.closest || !event.target.closest("#message, #new-chat-project")) return;
    const now = Date.now();
    if (now - aheadAt < 10000 && event.target.id === "message") return;
    aheadAt = now;
    socket.send(JSON.stringify({ action: "typing", project: chosen("project"), model: chosen("model") }),
                document.getElementById("chat"));
  });

  document.addEventListener("keydown", function (event) {
    const box = event.target;
    if (box.id !== "message" || event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    if (box.value.trim()) box.form.requestSubmit();
  });

  // The box is emptied once a message is sent; if the server did not take it (too many
  // waiting, archived, ...), its notice says so and the text comes back into the box.
  let lastSent = "";
  let lastAttached = [];
  document.addEventListener("htmx:wsAfterSend", function (event) {
    const form = document.getElementById("message-form");
    if (form && form.contains(event.target) && event.target.id === "message-form") {
      lastSent = document.getElementById("message").value;
      const attached = document.getElementById("attached");
      lastAttached = attached ? Array.from(attached.children) : [];
      if (attached) attached.replaceChildren();
      // Only the box: a reset would also put the model picker back to the model the page opened with.
      const box = document.getElementById("message");
      box.value = "";
      box.focus();
    }
  });
  function putBack() {
    const box = document.getElementById("message");
    if (!box || !lastSent || box.value) return false;
    box.value = lastSent;
    lastSent = "";
    const attached = document.getElementById("attached");
    if (attached) attached.replaceChildren.apply(attached, lastAttached);
    lastAttached = [];
    return true;
  }
  document.addEventListener("htmx:wsAfterMessage", function () {
    const flash = document.querySelector("#flash[data-refused]");
    if (flash && putBack()) flash.removeAttribute("data-refused");
  });

  // The server closes the connection on a frame over its limit (1009): the page does not send one.
  function megabytes(bytes) { return (bytes / 1024 / 1024).toFixed(1) + " MB"; }
  const TOO_LARGE = "Attach the text as a file instead (Attach), or shorten it.";
  document.addEventListener("htmx:wsBeforeSend", function (event) {
    const form = document.getElementById("message-form");
    if (!form || event.target !== form) return;
    const limit = parseInt(form.dataset.maxFrameBytes, 10);
    const size = new Blob([event.detail.message]).size;
    if (limit && size > limit) {
      event.preventDefault();
      showError("This message was not sent: it is " + megabytes(size) + ", and at most " + megabytes(limit) +
        " can be sent at once. " + TOO_LARGE);
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

  // Only a chat follows its newest message (on load, and as answers stream while the view is at
  // the bottom); every other page opens at its top.
  function follows() { return document.querySelector("[data-follow-newest]") !== null; }
  let stick = true;
  document.addEventListener("htmx:wsBeforeMessage", function () { stick = nearBottom(); });
  document.addEventListener("htmx:wsAfterMessage", function () {
    if (stick && follows()) window.scrollTo(0, document.body.scrollHeight);
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
    else if (code === 4410) connection("This link no longer works: its owner revoked it, or it expired.");
    else if (code === 4429) connection("Too many open tabs of this app: close some, then reload this page.");
    else if (code === 1009) {
      putBack();
      showError("The last message was too large for the server and was not sent. " + TOO_LARGE);
      connection("Reconnecting…");
      event.detail.socketWrapper.reconnect();  // htmx reconnects by itself only after a failure
    }
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

  window.addEventListener("load", function () { if (follows()) window.scrollTo(0, document.body.scrollHeight); });

  // On a phone the sidebar's navigation, recent chats and account fold behind Menu.
  document.addEventListener("click", function (event) {
    const toggle = event.target.closest("button.menu-toggle");
    if (!toggle) return;
    const sidebar = toggle.closest(".sidebar");
    const open = sidebar.classList.toggle("open");
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  });

  // The theme shows at once; the server keeps it for this browser and serves every page with it.
  document.addEventListener("change", function (event) {
    if (event.target.id !== "theme") return;
    const form = event.target.form;
    const theme = event.target.value;
    document.documentElement.dataset.theme = theme;
    const scheme = document.querySelector("meta[name=color-scheme]");
    if (scheme) scheme.content = theme === "system" ? "light dark" : theme;
    fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin",
                         headers: { "X-CSRFToken": csrfToken(), "X-Requested-With": "fetch" } })
      .then(function (response) { if (!response.ok) throw new Error(); })
      .catch(function () { showError("The theme could not be kept for your next pages. Try again."); });
  });

  // The Copy button of a code block in an answer (chat/markup.py renders it): copies the code.
  document.addEventListener("click", function (event) {
    const button = event.target.closest("button.copy-code");
    if (!button) return;
    const code = button.closest(".code-block").querySelector("pre code");
    const said = function (text) {
      button.textContent = text;
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(code.textContent).then(function () { said("Copied"); },
        function () { said("Press Ctrl+C to copy"); });
      return;
    }
    // Plain-HTTP pages have no clipboard API: select the code and copy the selection.
    const range = document.createRange();
    range.selectNodeContents(code);
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
    said(document.execCommand && document.execCommand("copy") ? "Copied" : "Press Ctrl+C to copy");
  });

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
      if ((url.indexOf("/ws/chat/") >= 0 || url.indexOf("/ws/share/") >= 0) && document.getElementById("turns")) {
        url += (url.indexOf("?") < 0 ? "?" : "&") + shown();
      }
      const socket = new WebSocket(url, []);
      socket.binaryType = htmx.config.wsBinaryType;
      return socket;
    };
  }


  // Browser notifications while the tab is hidden, if the person allowed them (the one "Notify me"
  // button asks): a permission prompt arrived, or the running turn ended.
  function notify(title, body, tag) {
    if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return;
    const note = new Notification(title, { body: body, tag: tag });
    note.onclick = function () { window.focus(); note.close(); };
  }
  const notified = new Set();
  document.addEventListener("htmx:wsAfterMessage", function () {
    document.querySelectorAll("[data-prompt]").forEach(function (el) {
      if (notified.has(el.id)) return;
      notified.add(el.id);
      notify("Claude Code asks for permission", "It wants to use " + el.dataset.prompt + ". Open the tab to allow or deny.", el.id);
    });
  });
  function offerNotifications() {
    document.querySelectorAll("button.notify-me, button.notify-prompts").forEach(function (button) {
      button.hidden = !("Notification" in window) || Notification.permission !== "default";
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-prompt]").forEach(function (el) { notified.add(el.id); });
    offerNotifications();
  });
  document.addEventListener("click", function (event) {
    if (!event.target.closest("button.notify-me, button.notify-prompts")) return;
    Notification.requestPermission().then(offerNotifications);
  });

  // The tab's title follows the chat's (a rename, here or in another tab, too), with a dot while a
  // turn runs or waits; a turn that ends while the tab is hidden notifies.
  const BUSY = ["running", "queued"];
  let wasBusy = null;
  function chatState() {
    const heading = document.getElementById("session-title");
    const state = document.getElementById("session-state");
    if (!heading) return;
    const title = heading.dataset.title || heading.textContent.trim() || "New chat";
    const busy = !!state && BUSY.indexOf(state.dataset.status) >= 0;
    document.title = (busy ? "● " : "") + title + " · Claude Code chat";
    if (wasBusy && !busy) notify("Claude Code finished", title, "turn-ended");
    wasBusy = busy;
  }
  document.addEventListener("DOMContentLoaded", chatState);
  document.addEventListener("htmx:wsAfterMessage", chatState);
  document.addEventListener("htmx:afterSettle", chatState);

  // The sidebar's recent chats come again, live, the same for every page of the member: each
  // page marks its own chat.
  function markCurrentChat() {
    document.querySelectorAll("#recent-chats a").forEach(function (link) {
      if (link.pathname === window.location.pathname) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    });
  }
  document.addEventListener("htmx:wsAfterMessage", markCurrentChat);
  document.addEventListener("htmx:afterSettle", markCurrentChat);

  // Esc stops the running turn (from anywhere on the chat's page).
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || event.defaultPrevented || event.isComposing) return;
    if (event.target.closest && event.target.closest("details[open]")) return;  // Esc closes a menu first
    const stop = document.querySelector("#session-state button.stop:not([disabled])");
    if (stop) {
      event.preventDefault();
      stop.click();
    }
  });

  // Attachments. On a chat's page a chosen file is uploaded at once into the chat's working
  // directory, and the box lists it (with a hidden field naming it for the message); on the New
  // chat page the files go with the first message, and the box lists their names.
  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; }
  }
  function showError(text) {
    const flash = document.getElementById("flash");
    if (flash) { flash.className = "flash error"; flash.textContent = text; }
    else window.alert(text);
  }
  document.addEventListener("change", function (event) {
    const input = event.target;
    if (input.id !== "attach-files" || !input.files.length) return;
    attach(input, Array.from(input.files));
  });
  // An image pasted into the message box is attached as a chosen file is (on a chat's page).
  document.addEventListener("paste", function (event) {
    const input = document.getElementById("attach-files");
    if (event.target.id !== "message" || !input || !input.dataset.upload || !event.clipboardData) return;
    const images = Array.from(event.clipboardData.files || []).filter(function (file) {
      return file.type.startsWith("image/");
    });
    if (!images.length) return;
    event.preventDefault();  // the picture, not its name as text
    attach(input, images.map(function (file, i) {
      // Pasted pictures are all called image.png: give each a name of its own.
      const ext = (file.type.split("/")[1] || "png").replace(/[^a-z0-9]/g, "");
      return new File([file], "pasted-" + Date.now() + (i ? "-" + i : "") + "." + ext, { type: file.type });
    }));
  });
  function attach(input, files) {
    const list = document.getElementById("attached");
    const limit = parseInt(input.dataset.maxBytes, 10);
    const large = files.filter(function (file) { return limit && file.size > limit; });
    if (large.length) {
      showError("“" + large[0].name + "” is " + megabytes(large[0].size) + "; an attachment may be at most " +
        megabytes(limit) + ". Attach a smaller file (or split it).");
      input.value = "";
      if (!input.dataset.upload) list.replaceChildren();
      return;
    }
    if (!input.dataset.upload) {
      list.replaceChildren();
      files.forEach(function (file) {
        const item = document.createElement("li");
        item.className = "chip";
        item.textContent = file.name;
        list.appendChild(item);
      });
      return;
    }
    const body = new FormData();
    files.forEach(function (file) { body.append("files", file); });
    input.disabled = true;
    fetch(input.dataset.upload, { method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() } })
      .then(function (response) {
        return response.text().then(function (text) {
          if (!response.ok) throw new Error(text || "The files could not be attached (" + response.status + "). Try again.");
          list.insertAdjacentHTML("beforeend", text);
          showError("");
        });
      })
      .catch(function (error) { showError(error.message); })
      .finally(function () { input.value = ""; input.disabled = false; });
  }
  document.addEventListener("click", function (event) {
    const remove = event.target.closest("button.unattach");
    if (remove) remove.closest("li").remove();
  });

})();
