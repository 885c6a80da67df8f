// The Files page: drop files on the upload form to upload them; refuse one over the limit before it
// is sent; and while a turn of the chat or task runs, refresh the open folder whenever the agent's
// file tool (or shell command) returns (the server says so over /ws/workspace/...).
(() => {
  "use strict";

  function setUpUpload(form) {
    const input = form.querySelector("input[type=file]");
    const limit = Number(form.dataset.limit || 0);
    const tooLarge = (files) => Array.from(files).find((file) => limit && file.size > limit);
    form.addEventListener("submit", (event) => {
      const big = tooLarge(input.files);
      if (big) {
        event.preventDefault();
        window.alert(`${big.name} is larger than the upload limit (${Math.round(limit / 1048576)} MB).`);
      }
    });
    // Files dropped anywhere on the folder's pane go into the open folder.
    const zone = form.closest(".ws-tree") || form;
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragging"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      input.files = event.dataTransfer.files;
      if (!tooLarge(input.files)) form.requestSubmit();
    });
  }

  function watch(root) {
    const path = root.dataset.watch;
    if (!path) return;
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    let socket;
    let delay = 1000;
    const connect = () => {
      socket = new WebSocket(scheme + window.location.host + path);
      socket.addEventListener("open", () => { delay = 1000; });
      socket.addEventListener("message", (event) => {
        let data;
        try { data = JSON.parse(event.data); } catch (error) { return; }
        const level = document.getElementById("ws-level");
        if (data.refresh && level && window.htmx) window.htmx.trigger(level, "refresh");
      });
      socket.addEventListener("close", (event) => {
        if (event.code >= 4400 && event.code < 4500) return; // refused: reconnecting would not help
        window.setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      });
    };
    connect();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form.ws-upload").forEach(setUpUpload);
    document.querySelectorAll("[data-watch]").forEach(watch);
  });
})();
