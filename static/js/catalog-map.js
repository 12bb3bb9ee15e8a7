/* Draws an offering's reach map (its access-point metros and my port metros) from a JSON data island.
 *
 * <div class="offering-map" data-map="ISLAND_ID" data-topojson="URL"> names the <script type="application/json">
 * holding the plotly figure built on the server. The world outline is loaded from the app's own static
 * files before drawing, so plotly never reaches for a CDN (and the CSP stays strict: no inline script).
 */
(function () {
  "use strict";

  function draw(container) {
    var island = document.getElementById(container.dataset.map);
    if (!island || typeof window.Plotly === "undefined" || container.dataset.drawn === "1") {
      return;
    }
    container.dataset.drawn = "1";
    var figure = JSON.parse(island.textContent);
    window.HubWorldMap.load(container.dataset.topojson)
      .then(function () {
        var config = { responsive: true, displaylogo: false, displayModeBar: false };
        return window.Plotly.react(container, figure.data, figure.layout, config);
      })
      .catch(function (error) {
        container.textContent = "The map could not be drawn (" + error.message + "); the table lists the same metros.";
      });
  }

  function drawAll() {
    document.querySelectorAll("[data-map]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", drawAll);
  document.addEventListener("htmx:afterSettle", drawAll);
})();
