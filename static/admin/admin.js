/* The admin's list and form behaviour without inline script (the Content-Security-Policy runs none).
 *
 * - Bulk actions: a menu item with data-action="<name>" runs Flask-Admin's modelActions.execute.
 * - A submit button with data-confirm="<question>" submits only when the person confirms.
 * - Links to "javascript:void(0)" or "#" that open Flask-Admin's menus and filters never navigate
 *   (the policy blocks javascript: URLs; templates/admin/model/layout.html dropped the inline onclick).
 * - Exclusive choices: ticking a box with data-exclusive="<group>" unticks the others of its group
 *   ("Hangfire Dashboard" or "View only", never both).
 * - The Tenant picker of a host editor's create forms ([data-tenant-picker]): a box whose wrapper has
 *   data-owner="host" or ="<tenant id>" is shown only while that is picked ("" or "__None" is the host);
 *   a hidden box is unticked and disabled, so it is never submitted. The server refuses them anyway.
 */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var item = event.target.closest("[data-action]");
    if (item && window.modelActions) {
      event.preventDefault();
      window.modelActions.execute(item.getAttribute("data-action"));
      return;
    }
    var inert = event.target.closest('a[href^="javascript:"], a.filter[href="#"], a[data-toggle][href="#"]');
    if (inert) { event.preventDefault(); }
    var button = event.target.closest("button[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  document.addEventListener("change", function (event) {
    var box = event.target;
    var group = box.getAttribute && box.getAttribute("data-exclusive");
    if (!group || !box.checked) { return; }
    document.querySelectorAll("input[data-exclusive]").forEach(function (other) {
      if (other !== box && other.getAttribute("data-exclusive") === group) { other.checked = false; }
    });
  });

  function pickedOwner(picker) {
    return (!picker.value || picker.value === "__None") ? "host" : picker.value;
  }

  function offerFor(picker) {
    var owner = pickedOwner(picker);
    picker.form.querySelectorAll("[data-owner]").forEach(function (wrapper) {
      var allowed = wrapper.getAttribute("data-owner") === owner;
      wrapper.hidden = !allowed;
      wrapper.querySelectorAll("input[type=checkbox]").forEach(function (box) {
        if (!allowed) { box.checked = false; }
        if (!box.hasAttribute("data-locked")) { box.disabled = !allowed; }
      });
    });
  }

  document.querySelectorAll("select[data-tenant-picker]").forEach(function (picker) {
    picker.form.querySelectorAll("[data-owner] input[disabled]").forEach(function (box) {
      box.setAttribute("data-locked", "");  // disabled by the server (the editor may not change it)
    });
    offerFor(picker);
    picker.addEventListener("change", function () { offerFor(picker); });
    // the admin's Select2 box announces a pick with a jQuery event, which native listeners don't see
    if (window.jQuery) { window.jQuery(picker).on("change", function () { offerFor(picker); }); }
  });
}());
