/* The world outline plotly's geo plots draw, loaded once from the app's own static files.
 *
 * plotly.js fetches its topojson from a CDN unless window.PlotlyGeoAssets already holds it; the
 * hub works offline and its CSP allows no other origin, so every map page loads this script first
 * and calls HubWorldMap.load(url) (url: the page's data-topojson attribute) before drawing.
 */
(function () {
  "use strict";

  var NAME = "world_110m";
  var loads = {};

  function load(url) {
    window.PlotlyGeoAssets = window.PlotlyGeoAssets || { topojson: {} };
    window.PlotlyGeoAssets.topojson = window.PlotlyGeoAssets.topojson || {};
    if (window.PlotlyGeoAssets.topojson[NAME]) {
      return Promise.resolve();
    }
    if (!loads[url]) {
      loads[url] = fetch(url, { credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("Could not load the world map (" + response.status + ")");
          }
          return response.json();
        })
        .then(function (data) {
          window.PlotlyGeoAssets.topojson[NAME] = data;
        });
    }
    return loads[url];
  }

  window.HubWorldMap = { load: load };
})();
