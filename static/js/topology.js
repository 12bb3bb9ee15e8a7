/* Draws the topology figures from their JSON data islands (CSP: no inline script).
 *
 * A container <div data-figure="ISLAND_ID" data-topojson="URL"> names the <script type="application/json">
 * that holds the plotly figure built on the server. The world map's topojson is loaded from the
 * app's own static files (never a CDN) before a geographic figure is drawn. After an htmx swap
 * (the filter form), the new fragment's figure is drawn the same way. Clicking a connection's
 * marker opens the connection: its first customdata item is the connection's id, which fills
 * the container's data-connection-url.
 */
(function () {
  "use strict";

  var ANY_ID = "00000000-0000-0000-0000-000000000000";
  var CONNECTION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

  function openConnection(container, event) {
    var point = event && event.points && event.points[0];
    var id = point && point.customdata && point.customdata[0];
    if (typeof id === "string" && CONNECTION_ID.test(id) && container.dataset.connectionUrl) {
      window.location.assign(container.dataset.connectionUrl.replace(ANY_ID, id));
    }
  }

  function draw(container) {
    var island = document.getElementById(container.dataset.figure);
    if (!island || typeof window.Plotly === "undefined") {
      return;
    }
    container.dataset.drawn = "1";
    var figure = JSON.parse(island.textContent);
    var geo = figure.data.some(function (trace) { return trace.type === "scattergeo"; });
    var ready = geo ? window.HubWorldMap.load(container.dataset.topojson) : Promise.resolve();
    ready
      .then(function () {
        var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["toImage"] };
        return window.Plotly.react(container, figure.data, figure.layout, config);
      })
      .then(function () {
        if (container.dataset.bound !== "1") {
          container.on("plotly_click", function (event) { openConnection(container, event); });
          container.dataset.bound = "1";
        }
      })
      .catch(function (error) {
        container.textContent = "The chart could not be drawn (" + error.message + "); the table below has the same data.";
      });
  }

  function drawNew() {
    document.querySelectorAll("[data-figure]:not([data-drawn])").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", drawNew);
  document.addEventListener("htmx:afterSettle", drawNew);
})();
