/* The colour theme of every page, applied before the page paints (loaded in <head>, no inline script).
 * Follows prefers-color-scheme ("auto") until the person picks light or dark; the choice is kept per
 * browser in localStorage ("theme": "light" | "dark"; absent = auto). app.js wires the picker. */
(function () {
  "use strict";
  var KEY = "theme";
  var media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function stored() {
    try { return window.localStorage.getItem(KEY); } catch (error) { return null; }
  }

  function choice() {
    var value = stored();
    return value === "light" || value === "dark" ? value : "auto";
  }

  function apply() {
    var picked = choice();
    var theme = picked === "auto" ? (media && media.matches ? "dark" : "light") : picked;
    document.documentElement.setAttribute("data-theme", theme);
    document.documentElement.setAttribute("data-theme-choice", picked);
  }

  function choose(value) {
    try {
      if (value === "light" || value === "dark") { window.localStorage.setItem(KEY, value); }
      else { window.localStorage.removeItem(KEY); }
    } catch (error) { /* private mode: the choice lasts for this page only */ }
    apply();
  }

  document.documentElement.classList.add("js");
  apply();
  if (media && media.addEventListener) { media.addEventListener("change", apply); }
  window.appTheme = { choice: choice, choose: choose };
})();
