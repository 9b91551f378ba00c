/* /reports: live progress of unfinished reports, and only the chosen report's parameters.
 *
 * Every row with data-final="0" polls its data-status-url once a second and updates its
 * progress bar, label, message, size and actions in place (no reload). Polling pauses
 * while the tab is hidden and stops for a row once its report is ready or failed.
 * Text goes in through textContent only.
 */
(function () {
  "use strict";

  var POLL_MS = 1000;
  var BADGES = { ready: "badge-success", failed: "badge-danger", running: "badge-primary" };
  var timer = null;

  function part(row, role) {
    return row.querySelector('[data-role="' + role + '"]');
  }

  // as the server's filesize filter (app/web.py human_size): "368 bytes", "12.3 kB"
  function humanSize(bytes) {
    if (bytes === null || bytes === undefined) { return "–"; }
    if (bytes < 1000) { return bytes + (bytes === 1 ? " byte" : " bytes"); }
    var units = ["kB", "MB", "GB"];
    var value = bytes;
    var unit = -1;
    while ((value >= 1000 || unit < 0) && unit < units.length - 1) { value /= 1000; unit += 1; }
    return value.toFixed(1) + " " + units[unit];
  }

  function seconds(value) {
    if (value === null || value === undefined) { return "–"; }
    if (value < 60) { return value.toFixed(1) + " s"; }
    return Math.floor(value / 60) + " min " + Math.floor(value % 60) + " s";
  }

  function showProgress(row, status) {
    var box = part(row, "progress");
    var bar = box.querySelector(".progress-bar");
    var percent = Math.max(0, Math.min(100, Math.round(status.progress || 0)));
    box.hidden = status.state === "failed";
    bar.style.width = percent + "%";
    bar.setAttribute("aria-valuenow", String(percent));
    bar.textContent = percent + " %";
    bar.classList.toggle("progress-bar-striped", !status.final);
    bar.classList.toggle("progress-bar-animated", status.state === "running");
    bar.classList.toggle("bg-success", status.state === "ready");
  }

  function showLabel(row, status) {
    var label = part(row, "label");
    label.className = "badge " + (BADGES[status.state] || "badge-secondary");
    label.textContent = status.label;
    part(row, "message").textContent = status.message || "";
    part(row, "error").textContent = status.error || "";
  }

  function showOutcome(row, status) {
    var download = part(row, "download");
    download.hidden = status.state !== "ready";
    if (status.download_url) { download.href = status.download_url; }
    part(row, "retry").hidden = status.state !== "failed";
    part(row, "size").textContent = status.state === "ready" ? humanSize(status.size_bytes) : "–";
    var timings = part(row, "timings");
    timings.textContent = "waited " + seconds(status.wait_seconds);
    timings.appendChild(document.createElement("br"));
    timings.appendChild(document.createTextNode("built in " + seconds(status.build_seconds)));
  }

  // the "being generated" message at the top of the page follows the report it is about
  function showBanner(row, status) {
    var banner = document.querySelector('[data-flash-subject="report-' + row.getAttribute("data-report-id") + '"]');
    if (!banner || !status.final) { return; }
    var ready = status.state === "ready";
    banner.className = "alert " + (ready ? "alert-success" : "alert-danger");
    banner.textContent = "Report #" + row.getAttribute("data-report-id") +
      (ready ? " is ready: download it below (it has been emailed to you too)." : " failed: " + (status.error || "see below."));
  }

  function update(row, status) {
    showProgress(row, status);
    showLabel(row, status);
    showOutcome(row, status);
    showBanner(row, status);
    if (status.final) { row.setAttribute("data-final", "1"); }
  }

  function poll(row) {
    if (row.getAttribute("data-polling") === "1") { return; }
    row.setAttribute("data-polling", "1");
    fetch(row.getAttribute("data-status-url"), {
      headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store"
    }).then(function (response) {
      if (!response.ok) { throw new Error("status " + response.status); }
      return response.json();
    }).then(function (status) {
      update(row, status);
    }).catch(function () {
      /* transient (network, restart): try again on the next tick */
    }).then(function () {
      row.removeAttribute("data-polling");
    });
  }

  function tick() {
    var rows = document.querySelectorAll('tr[data-status-url][data-final="0"]');
    Array.prototype.forEach.call(rows, poll);
    if (!rows.length) { stop(); }
  }

  function start() {
    if (timer === null && !document.hidden) {
      timer = window.setInterval(tick, POLL_MS);
      tick();
    }
  }

  function stop() {
    if (timer !== null) {
      window.clearInterval(timer);
      timer = null;
    }
  }

  function showChosenParameters() {
    var chosen = document.querySelector("input[data-report-kind]:checked");
    var fieldsets = document.querySelectorAll("fieldset[data-report-params]");
    Array.prototype.forEach.call(fieldsets, function (fieldset) {
      fieldset.hidden = chosen !== null && fieldset.getAttribute("data-report-params") !== chosen.value;
    });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { stop(); } else { start(); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var kinds = document.querySelectorAll("input[data-report-kind]");
    Array.prototype.forEach.call(kinds, function (input) {
      input.addEventListener("change", showChosenParameters);
    });
    showChosenParameters();
    // a report that was already finished when the page was drawn
    Array.prototype.forEach.call(document.querySelectorAll('tr[data-report-id][data-final="1"]'), function (row) {
      showBanner(row, { final: true, state: row.getAttribute("data-state"), error: null });
    });
    Array.prototype.forEach.call(document.querySelectorAll(".progress-bar[data-width]"), function (bar) {
      bar.style.width = Math.max(0, Math.min(100, Number(bar.getAttribute("data-width")) || 0)) + "%";
    });
    start();
  });
}());
