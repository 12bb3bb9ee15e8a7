/* Threat dashboard: draws the plotly figures from the JSON data island "threatdash-charts" and
 * refreshes the live alert table every few seconds (pausable). No inline script: CSP is strict.
 *
 * Each chart container is <div class="chart" data-chart="NAME">, NAME a key of the island. The
 * world map's topojson is read from the app's static files (never a CDN) before the map is drawn.
 * The live table is fetched through htmx with the filter form's values; "Pause live updates"
 * stops the timer and resumes it.
 */
(function () {
  "use strict";

  function drawCharts() {
    var island = document.getElementById("threatdash-charts");
    if (!island || typeof window.Plotly === "undefined") {
      return;
    }
    var figures = JSON.parse(island.textContent);
    var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["toImage", "lasso2d", "select2d"] };
    document.querySelectorAll("[data-chart]").forEach(function (container) {
      var figure = figures[container.dataset.chart];
      if (!figure) {
        return;
      }
      var geo = figure.data.some(function (trace) { return trace.type === "scattergeo"; });
      var ready = geo ? window.HubWorldMap.load(container.dataset.topojson) : Promise.resolve();
      ready
        .then(function () {
          return window.Plotly.react(container, figure.data, figure.layout, config);
        })
        .then(function () {
          container.dataset.drawn = "1";
        })
        .catch(function (error) {
          container.textContent = "The chart could not be drawn (" + error.message + "); the table below has the same data.";
        });
    });
  }

  function startLive() {
    var toggle = document.getElementById("live-toggle");
    var form = document.getElementById("live-filters");
    if (!toggle || !form || typeof window.htmx === "undefined") {
      return;
    }
    var seconds = parseInt(toggle.dataset.refreshSeconds, 10) || 10;
    var timer = null;

    function refresh() {
      if (document.hidden) {
        return;
      }
      var params = new URLSearchParams(new FormData(form)).toString();
      window.htmx.ajax("GET", form.dataset.liveUrl + "?" + params, { target: "#live-table", swap: "outerHTML" });
    }

    function run() {
      timer = window.setInterval(refresh, seconds * 1000);
      toggle.textContent = "Pause live updates";
      toggle.setAttribute("aria-pressed", "false");
    }

    function pause() {
      window.clearInterval(timer);
      timer = null;
      toggle.textContent = "Resume live updates";
      toggle.setAttribute("aria-pressed", "true");
    }

    toggle.addEventListener("click", function () {
      if (timer === null) {
        refresh();
        run();
      } else {
        pause();
      }
    });
    run();
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    startLive();
  });
})();
