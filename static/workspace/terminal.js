// The workspace's terminal: xterm.js on the terminal's own websocket. Output comes as binary frames,
// notices as JSON text frames; keystrokes and sizes go as JSON. The page's Content-Security-Policy
// allows no inline style, and xterm.js writes its own styles into <style> elements and some colours
// into style attributes: both are given to it here through the CSSOM instead (constructed style
// sheets and element.style), which the policy allows.
(() => {
  "use strict";

  function cssomStyles() {
    const create = Document.prototype.createElement;
    document.createElement = function (tag, options) {
      if (String(tag).toLowerCase() !== "style") return create.call(this, tag, options);
      // An inert element stands in the DOM where xterm.js puts it; its text becomes a sheet.
      const holder = create.call(this, "template");
      const sheet = new CSSStyleSheet();
      let text = "";
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
      Object.defineProperty(holder, "textContent", {
        get: () => text,
        set: (value) => { text = String(value); sheet.replaceSync(text); },
      });
      Object.defineProperty(holder, "sheet", { get: () => sheet });
      const remove = holder.remove.bind(holder);
      holder.remove = () => {
        document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet);
        remove();
      };
      return holder;
    };
    const setAttribute = Element.prototype.setAttribute;
    Element.prototype.setAttribute = function (name, value) {
      if (String(name).toLowerCase() === "style" && this.closest && this.closest(".xterm")) {
        this.style.cssText = String(value);
        return;
      }
      setAttribute.call(this, name, value);
    };
  }

  function start(box) {
    const status = document.getElementById("ws-terminal-status");
    const say = (text) => { status.textContent = text; };
    const term = new window.Terminal({ cursorBlink: true, scrollback: 5000, fontSize: 14 });
    const fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(box);
    fit.fit();
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + box.dataset.socket);
    socket.binaryType = "arraybuffer";
    const send = (frame) => { if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame)); };
    const sendSize = () => send({ type: "resize", cols: term.cols, rows: term.rows });
    socket.addEventListener("open", () => { say("Connected."); sendSize(); term.focus(); });
    // Flow control: the server sends at most a window of output ahead of what xterm.js has drawn.
    let written = 0;
    let acked = 0;
    socket.addEventListener("message", (event) => {
      if (typeof event.data !== "string") {
        const chunk = new Uint8Array(event.data);
        term.write(chunk, () => {
          written += chunk.length;
          if (written - acked >= 262144) {
            acked = written;
            send({ type: "ack", bytes: written });
          }
        });
        return;
      }
      try {
        const frame = JSON.parse(event.data);
        if (frame.type === "notice") say(frame.text);
      } catch (error) {
        say(event.data);
      }
    });
    socket.addEventListener("close", (event) => {
      const why = {
        4401: "You are logged out: log in again, then reload.",
        4403: "You may not open a terminal here.",
        4404: "There is no such folder.",
        4429: status.textContent || "Too many terminals or pages open: close some, then reload.",
      }[event.code];
      say(why || status.textContent || "Disconnected: reload the page to reconnect.");
      box.dataset.closed = String(event.code);
    });
    term.onData((data) => send({ type: "input", data }));
    term.onResize(sendSize);
    window.addEventListener("resize", () => fit.fit());
    box.terminal = term;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("ws-terminal");
    if (!box) return;
    cssomStyles();
    start(box);
  });
})();
