// Draws the utilisation charts (templates/fabric/partials/utilisation.html) from their JSON data
// islands, on page load and whenever htmx swaps a chart in (window picker, live refresh).
(function () {
  "use strict";

  var SELECTOR = "[data-utilisation-chart]";

  function draw(root) {
    if (!window.Plotly || !root || !root.querySelectorAll) {
      return;
    }
    var targets = Array.prototype.slice.call(root.querySelectorAll(SELECTOR));
    if (root.matches && root.matches(SELECTOR)) {
      targets.push(root);
    }
    targets.forEach(function (target) {
      var island = document.getElementById(target.getAttribute("data-utilisation-chart"));
      if (!island) {
        return;
      }
      var figure = JSON.parse(island.textContent);
      window.Plotly.react(target, figure.data, figure.layout, figure.config);
    });
  }

  document.addEventListener("htmx:load", function (event) {
    draw(event.detail.elt);
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      draw(document);
    });
  } else {
    draw(document);
  }
})();
