/* Behaviour shared by every page (no inline scripts anywhere: the CSP allows scripts from 'self' only):
 *  - the menu button folds the navigation away on narrow screens;
 *  - the theme picker (auto / light / dark, see theme.js);
 *  - links marked data-back go back in history when there is one;
 *  - a select marked data-autosubmit submits its form on change (its button is for no-script use,
 *    hidden by CSS once theme.js has marked the page html.js). */
(function () {
  "use strict";

  var toggle = document.querySelector("[data-nav-toggle]");
  var menu = document.querySelector("[data-nav-menu]");
  if (toggle && menu) {
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      menu.classList.toggle("is-open", open);
    });
  }

  var picker = document.querySelector("[data-theme-select]");
  if (picker && window.appTheme) {
    picker.value = window.appTheme.choice();
    picker.addEventListener("change", function () { window.appTheme.choose(picker.value); });
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-back]"), function (link) {
    if (window.history.length < 2) { return; }
    link.addEventListener("click", function (event) { event.preventDefault(); window.history.back(); });
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches("select[data-autosubmit]") && event.target.form) { event.target.form.submit(); }
  });

  // a category of the menu (<details>) closes when the person clicks elsewhere
  document.addEventListener("click", function (event) {
    Array.prototype.forEach.call(document.querySelectorAll(".app-category details[open]"), function (details) {
      if (!details.contains(event.target)) { details.open = false; }
    });
  });
})();
