/* Alert list: the "tick all" box ticks every alert of the page (bulk actions work without it). */
(function () {
  "use strict";

  function bind() {
    var all = document.getElementById("tick-all");
    if (!all || all.dataset.bound === "1") {
      return;
    }
    all.dataset.bound = "1";
    all.addEventListener("change", function () {
      document.querySelectorAll('#bulk-form input[name="alerts"]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", bind);
  document.addEventListener("htmx:afterSettle", bind);
})();
