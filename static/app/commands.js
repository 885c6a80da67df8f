// The slash-command menu of the message box. While the box holds "/" and the start of a name, the
// chat's commands that match are offered (arrow keys, Enter or Tab choose, Esc closes). Only a
// command chosen here is sent as one (a hidden field names it); whatever else starts with "/" is
// sent as text. Editing the chosen name away makes the message text again.
(function () {
  "use strict";

  function parts() {
    return {
      box: document.getElementById("message"),
      menu: document.getElementById("command-menu"),
      flag: document.getElementById("message-command"),
      note: document.getElementById("command-chosen"),
    };
  }
  function options(menu) { return Array.from(menu.querySelectorAll("[role=option]")); }
  function shown(menu) { return options(menu).filter(function (li) { return !li.hidden; }); }

  let active = -1;
  function close(p) {
    p.menu.hidden = true;
    active = -1;
    p.box.setAttribute("aria-expanded", "false");
    p.box.removeAttribute("aria-activedescendant");
  }
  function select(p, index) {
    const list = shown(p.menu);
    active = (index + list.length) % list.length;
    list.forEach(function (li, i) { li.setAttribute("aria-selected", i === active ? "true" : "false"); });
    p.box.setAttribute("aria-activedescendant", list[active].id);
  }
  function stillChosen(p) {
    const name = p.flag.value;
    return name && (p.box.value === "/" + name || p.box.value.startsWith("/" + name + " ") ||
      p.box.value.startsWith("/" + name + "\n"));
  }
  function update() {
    const p = parts();
    if (!p.box || !p.menu || !p.flag) return;
    if (!stillChosen(p)) p.flag.value = "";
    if (p.note) p.note.hidden = !p.flag.value;
    const typing = /^\/([A-Za-z0-9_-]*)$/.exec(p.box.value);
    if (!typing || p.flag.value) { close(p); return; }
    const start = typing[1].toLowerCase();
    options(p.menu).forEach(function (li) { li.hidden = !li.dataset.name.toLowerCase().startsWith(start); });
    if (!shown(p.menu).length) { close(p); return; }
    p.menu.hidden = false;
    p.box.setAttribute("aria-expanded", "true");
    select(p, Math.max(active, 0) < shown(p.menu).length ? Math.max(active, 0) : 0);
  }
  function choose(p, li) {
    p.box.value = "/" + li.dataset.name + ("args" in li.dataset ? " " : "");
    p.flag.value = li.dataset.name;
    if (p.note) p.note.hidden = false;
    close(p);
    p.box.focus();
  }

  document.addEventListener("input", function (event) { if (event.target.id === "message") update(); });
  // In the capture phase: the menu's keys come before Enter-to-send and Esc-to-stop.
  document.addEventListener("keydown", function (event) {
    const p = parts();
    if (event.target !== p.box || !p.menu || p.menu.hidden || event.isComposing) return;
    const list = shown(p.menu);
    let handled = true;
    if (event.key === "ArrowDown") select(p, active + 1);
    else if (event.key === "ArrowUp") select(p, active - 1);
    else if ((event.key === "Enter" && !event.shiftKey) || event.key === "Tab") choose(p, list[Math.max(active, 0)]);
    else if (event.key === "Escape") close(p);
    else handled = false;
    if (handled) { event.preventDefault(); event.stopPropagation(); }
  }, true);
  document.addEventListener("mousedown", function (event) {
    const li = event.target.closest && event.target.closest("#command-menu [role=option]");
    if (!li) return;
    event.preventDefault();  // the box keeps the focus
    choose(parts(), li);
  });
  document.addEventListener("focusout", function (event) {
    const p = parts();
    if (p.box && event.target === p.box && p.menu) close(p);
  });
  // Once sent, the next message is text again unless a command is chosen anew.
  document.addEventListener("htmx:wsAfterSend", function () {
    const p = parts();
    if (p.flag) p.flag.value = "";
    if (p.note) p.note.hidden = true;
  });
})();
