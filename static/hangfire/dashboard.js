/* The jobs dashboard's behaviour, without a framework:
 *  - live parts ([data-live-url]) re-fetch their server-rendered fragment every few seconds
 *    (every second while they show a running job), paused while the tab is hidden; ticked rows
 *    stay ticked across refreshes;
 *  - forms and buttons with data-confirm ask first (confirm());
 *  - row selection: select-all, "N selected", buttons that need a selection. */
(function () {
  "use strict";
  var root = document.querySelector("[data-dashboard]");
  if (!root) { return; }
  var refreshMs = parseInt(root.getAttribute("data-refresh-ms"), 10) || 3000;
  var status = root.querySelector("[data-live-status]");

  // --- live fragments -------------------------------------------------------------------
  function setStatus(state, text) {
    if (!status) { return; }
    status.setAttribute("data-state", state);
    status.textContent = text;
  }

  function tickedIds(container) {
    return Array.prototype.map.call(container.querySelectorAll('input[name="ids"]:checked'),
      function (box) { return box.value; });
  }

  function retick(container, ids) {
    ids.forEach(function (id) {
      var box = container.querySelector('input[name="ids"][value="' + CSS.escape(id) + '"]');
      if (box) { box.checked = true; }
    });
  }

  // a scrolled log box stays where the reader left it; one at its end follows new lines
  function logsAtEnd(container) {
    return Array.prototype.map.call(container.querySelectorAll(".hf-log"), function (log) {
      return log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    });
  }

  function restoreLogs(container, atEnd, tops) {
    Array.prototype.forEach.call(container.querySelectorAll(".hf-log"), function (log, index) {
      log.scrollTop = (atEnd[index] === false) ? tops[index] : log.scrollHeight;
    });
  }

  function swap(container, html) {
    var atEnd = logsAtEnd(container);
    var tops = Array.prototype.map.call(container.querySelectorAll(".hf-log"), function (log) { return log.scrollTop; });
    var ids = tickedIds(container);
    var open = Array.prototype.map.call(container.querySelectorAll("details[open]"), function (d) {
      return Array.prototype.indexOf.call(container.querySelectorAll("details"), d);
    });
    container.innerHTML = html;
    moveSlots(container);
    setWidths(container);
    retick(container, ids);
    var details = container.querySelectorAll("details");
    open.forEach(function (index) { if (details[index]) { details[index].open = true; } });
    restoreLogs(container, atEnd, tops);
    updateSelection(container.closest("[data-selection-form]"));
  }

  // progress bars carry their width as data (no inline styles: the CSP allows none)
  function setWidths(container) {
    Array.prototype.forEach.call(container.querySelectorAll("[data-width]"), function (bar) {
      bar.style.width = Math.max(0, Math.min(100, Number(bar.getAttribute("data-width")) || 0)) + "%";
    });
  }
  setWidths(document);

  // a fragment may carry fresh copies of parts that live elsewhere on the page (the list menu's
  // counts): each [data-live-slot] replaces its namesake, unless the person is using it right now
  function moveSlots(container) {
    Array.prototype.forEach.call(container.querySelectorAll("[data-live-slot]"), function (fresh) {
      var name = fresh.getAttribute("data-live-slot");
      var target = Array.prototype.filter.call(document.querySelectorAll('[data-live-slot="' + name + '"]'),
        function (node) { return !container.contains(node); })[0];
      if (target && !target.contains(document.activeElement)) { target.replaceWith(fresh); }
      else { fresh.remove(); }
    });
  }

  function refresh(container) {
    var url = container.getAttribute("data-live-url");
    return fetch(url, { credentials: "same-origin", cache: "no-store",
                        headers: { "Accept": "text/html", "X-Requested-With": "fetch" } })
      .then(function (response) {
        if (response.headers.get("X-Dashboard-Fragment") !== "1") {
          throw new Error(response.status === 200 ? "signed out" : "HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) { swap(container, html); setStatus("ok", "live"); })
      .catch(function (error) { setStatus("error", "offline (" + error.message + ")"); });
  }

  // a fragment holding [data-live-fast] (a running job's page) refreshes every second
  var FAST_MS = 1000;
  function delayFor(container) {
    return container.querySelector("[data-live-fast]") ? Math.min(refreshMs, FAST_MS) : refreshMs;
  }

  function loop(container) {
    function next() { window.setTimeout(tick, delayFor(container)); }
    function tick() {
      if (document.hidden) { setStatus("paused", "paused"); next(); return; }
      refresh(container).then(next, next);
    }
    next();
  }

  var live = document.querySelectorAll("[data-live-url]");
  Array.prototype.forEach.call(live, function (container) { restoreLogs(container, [], []); });
  Array.prototype.forEach.call(live, loop);
  if (!live.length && status) { status.hidden = true; }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { Array.prototype.forEach.call(live, refresh); }
  });

  // --- selection ------------------------------------------------------------------------
  function updateSelection(form) {
    if (!form) { return; }
    var count = form.querySelectorAll('input[name="ids"]:checked').length;
    var boxes = form.querySelectorAll('input[name="ids"]');
    Array.prototype.forEach.call(form.querySelectorAll("[data-needs-selection]"), function (button) {
      button.disabled = count === 0;
    });
    var all = form.querySelector("[data-select-all]");
    if (all) { all.checked = boxes.length > 0 && count === boxes.length; all.indeterminate = count > 0 && count < boxes.length; }
    var label = form.querySelector("[data-selection-count]");
    if (label) { label.textContent = count ? count + " selected" : ""; }
  }

  document.addEventListener("change", function (event) {
    var form = event.target.closest("[data-selection-form]");
    if (!form) { return; }
    if (event.target.hasAttribute("data-select-all")) {
      Array.prototype.forEach.call(form.querySelectorAll('input[name="ids"]'), function (box) {
        box.checked = event.target.checked;
      });
    }
    updateSelection(form);
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-selection-form]"), updateSelection);

  // --- confirmation ---------------------------------------------------------------------
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = (button && button.getAttribute("data-confirm")) || event.target.getAttribute("data-confirm");
    if (!question) { return; }
    var form = event.target;
    var ticked = form.querySelectorAll('input[name="ids"]:checked');
    var names = Array.prototype.map.call(ticked, function (box) { return "“" + (box.getAttribute("data-name") || box.value) + "”"; });
    var listed = names.length > 5 ? names.slice(0, 5).join(", ") + " and " + (names.length - 5) + " more" : names.join(", ");
    if (!window.confirm(question.replace("{n}", String(ticked.length)).replace("{names}", listed))) { event.preventDefault(); }
  });

  // --- header search: suggestions while typing (a listbox under the box; arrows, Enter, Escape) ------
  var search = document.querySelector("[data-search]");
  if (search) {
    var box = search.querySelector('input[name="q"]');
    var list = search.querySelector('[role="listbox"]');
    var pending = null;
    var active = -1;

    var options = function () { return list.querySelectorAll('[role="option"]'); };
    var close = function () { list.hidden = true; box.setAttribute("aria-expanded", "false"); active = -1; };
    var highlight = function (index) {
      var all = options();
      active = all.length ? (index + all.length) % all.length : -1;
      Array.prototype.forEach.call(all, function (option, i) { option.setAttribute("aria-selected", String(i === active)); });
      if (active >= 0) { box.setAttribute("aria-activedescendant", all[active].id); }
    };
    var show = function (items) {
      list.textContent = "";
      items.forEach(function (item, index) {
        var option = document.createElement("li");
        option.id = "hf-suggestion-" + index;
        option.setAttribute("role", "option");
        option.setAttribute("aria-selected", "false");
        option.setAttribute("data-url", item.url);
        var label = document.createElement("span");
        label.textContent = item.label;
        var detail = document.createElement("small");
        detail.textContent = item.detail;
        option.appendChild(label);
        option.appendChild(detail);
        list.appendChild(option);
      });
      list.hidden = items.length === 0;
      box.setAttribute("aria-expanded", String(items.length > 0));
      active = -1;
    };
    var suggest = function () {
      var text = box.value.trim();
      if (!text) { close(); return; }
      var url = search.getAttribute("data-suggest-url") + "?q=" + encodeURIComponent(text);
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) { return response.ok ? response.json() : { suggestions: [] }; })
        .then(function (answer) { if (box.value.trim() === text) { show(answer.suggestions || []); } })
        .catch(close);
    };
    box.addEventListener("input", function () { window.clearTimeout(pending); pending = window.setTimeout(suggest, 150); });
    box.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        if (list.hidden) { return; }
        event.preventDefault();
        highlight(active + (event.key === "ArrowDown" ? 1 : -1));
      } else if (event.key === "Enter" && active >= 0) {
        event.preventDefault();
        window.location.assign(options()[active].getAttribute("data-url"));
      } else if (event.key === "Escape") { close(); }
    });
    list.addEventListener("mousedown", function (event) {
      var option = event.target.closest('[role="option"]');
      if (option) { event.preventDefault(); window.location.assign(option.getAttribute("data-url")); }
    });
    box.addEventListener("blur", function () { window.setTimeout(close, 100); });
  }
})();
