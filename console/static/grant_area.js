/* The layer page's grants: the table of grants in force, their areas on a map of their own
   (the layer's features beneath), and the grant form, whose area is the whole layer, an admin
   area picked from GET /areas (a district, or one of its subdistricts), or a polygon drawn on
   that map with Terra Draw (vendored from npm, console/static/vendor). Everything goes through
   the API with the person's session, so only the layer's department may grant. */
(() => {
  "use strict";
  const AREAS = 1000;  // GET /areas answers at most this many per page; Tianjin has 16 districts
  const FEATURES = 1000;

  function initGrants() {
    const { M, $, api, fmt, cell, day, list, enc, errorText } = window.geoConsole;
    const id = $("layer-title").dataset.layer;
    const base = "/collections/" + enc(id);
    const form = $("grant-form");
    const names = new Map();  // admin area code -> its name, once read
    let map = null;
    let draw = null;
    let drawn = null;  // the finished polygon (GeoJSON, EPSG:4326), or null

    async function adminArea(code) {
      const area = await api("GET", "/areas/" + enc(code) + "?crs=CRS84");
      names.set(code, area.name);
      return area;
    }

    function areaText(grant) {
      if (grant.area_code) {
        const name = names.get(grant.area_code);
        return name ? name + "（" + grant.area_code + "）" : grant.area_code;
      }
      return grant.area ? M.area_drawn_short : M.area_whole;
    }

    async function grantAreas(current) {
      const features = [];
      for (const g of current) {
        let geometry = g.area;
        if (g.area_code) {
          try { geometry = (await adminArea(g.area_code)).geometry; } catch (err) { geometry = null; }
        }
        if (geometry) features.push({ type: "Feature", geometry, properties: { grant: g.id } });
      }
      return { type: "FeatureCollection", features };
    }

    async function loadGrants() {
      const found = await api("GET", base + "/grants");
      // The API lists revoked and expired grants too (their history); shown: those in force.
      const current = found.grants.filter((g) => g.active);
      const areas = await grantAreas(current);
      const tbody = $("grants-body");
      tbody.replaceChildren();
      $("grants-empty").hidden = current.length > 0;
      for (const g of current) {
        const tr = document.createElement("tr");
        tr.dataset.grant = g.id;
        cell(tr, g.grantee || M.everyone);
        cell(tr, M["level_" + g.level] || g.level);
        cell(tr, areaText(g));
        cell(tr, (g.attributes || []).join(", "));
        cell(tr, g.expires_at ? day(g.expires_at) : "");
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = M.revoke;
        button.setAttribute("aria-label", M.revoke + " " + (g.grantee || M.everyone));
        button.addEventListener("click", async () => {
          try {
            await api("DELETE", base + "/grants/" + g.id);
            await loadGrants();
          } catch (err) {
            $("grant-error").textContent = errorText(err);
          }
        });
        cell(tr, "").appendChild(button);
        tbody.appendChild(tr);
      }
      showAreas(areas);
    }

    function showAreas(areas) {
      if (!map) return;
      const source = map.getSource("grant-areas");
      if (source) source.setData(areas);
      window.grantAreasShown = areas.features.length;
    }

    /* Districts, then the chosen district's subdistricts: codes sent, names shown. */
    async function fillAreas(select, params, first) {
      const found = await api("GET", "/areas?" + new URLSearchParams({ ...params, limit: AREAS }));
      select.replaceChildren(new Option(first, ""));
      for (const a of found.areas) {
        names.set(a.code, a.name);
        select.appendChild(new Option(a.name + "（" + a.code + "）", a.code));
      }
    }

    function startMap() {
      if (!window.maplibregl) return;
      map = new maplibregl.Map({
        container: "grant-map",
        style: { version: 8, sources: {}, layers: [
          { id: "bg", type: "background", paint: { "background-color": "#f6f4ee" } }] },
        center: [117.2, 39.13], zoom: 8, attributionControl: false,
      });
      window.grantMap = map;
      map.on("load", async () => {
        map.addSource("grant-areas", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
        map.addLayer({ id: "grant-fill", type: "fill", source: "grant-areas",
          paint: { "fill-color": "#d35400", "fill-opacity": 0.15 } });
        map.addLayer({ id: "grant-line", type: "line", source: "grant-areas",
          paint: { "line-color": "#d35400", "line-width": 2 } });
        let data = { type: "FeatureCollection", features: [] };
        try { data = await api("GET", base + "/items?limit=" + FEATURES); } catch (err) { /* shown by the table */ }
        map.addSource("features", { type: "geojson", data });
        map.addLayer({ id: "features-fill", type: "fill", source: "features",
          filter: ["==", ["geometry-type"], "Polygon"], paint: { "fill-color": "#4a3f8c", "fill-opacity": 0.3 } });
        map.addLayer({ id: "features-points", type: "circle", source: "features",
          filter: ["==", ["geometry-type"], "Point"], paint: { "circle-color": "#4a3f8c", "circle-radius": 4 } });
        const box = bounds(data.features);
        if (box) map.fitBounds(box, { padding: 40, maxZoom: 14, duration: 0 });
        draw = new terraDraw.TerraDraw({
          adapter: new terraDrawMaplibreGlAdapter.TerraDrawMapLibreGLAdapter({ map }),
          modes: [new terraDraw.TerraDrawPolygonMode()],
        });
        draw.start();
        draw.on("finish", (featureId) => {
          const feature = draw.getSnapshot().find((f) => f.id === featureId);
          if (!feature) return;
          drawn = feature.geometry;
          draw.setMode("static");
          $("grant-draw-status").textContent = fmt("draw_done", { n: drawn.coordinates[0].length - 1 });
        });
        await loadGrants().catch((err) => { $("grant-error").textContent = errorText(err); });
        window.grantMapReady = true;
      });
    }

    function bounds(features) {
      let box = null;
      const walk = (c) => {
        if (typeof c[0] === "number") {
          box = box ? [[Math.min(box[0][0], c[0]), Math.min(box[0][1], c[1])],
            [Math.max(box[1][0], c[0]), Math.max(box[1][1], c[1])]] : [[c[0], c[1]], [c[0], c[1]]];
        } else c.forEach(walk);
      };
      for (const f of features) if (f.geometry) walk(f.geometry.coordinates);
      return box;
    }

    function clearDrawing() {
      drawn = null;
      if (draw) { draw.clear(); draw.setMode("static"); }
      $("grant-draw-status").textContent = "";
    }

    $("grant-draw-start").addEventListener("click", () => {
      if (!draw) return;
      clearDrawing();
      draw.setMode("polygon");
      $("grant-map").scrollIntoView({ block: "center" });
    });
    $("grant-draw-clear").addEventListener("click", clearDrawing);
    $("grant-district").addEventListener("change", (event) => {
      const code = event.target.value;
      const sub = $("grant-subdistrict");
      if (!code) { sub.replaceChildren(new Option(M.whole_district, "")); return; }
      fillAreas(sub, { level: "subdistrict", parent: code }, M.whole_district)
        .catch((err) => { $("grant-error").textContent = errorText(err); });
    });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      $("grant-error").textContent = "";
      const el = form.elements;
      const grant = { grantee: el.grantee.value.trim() || null, level: el.level.value };
      const kind = el.area_kind.value;
      if (kind === "admin") {
        const code = el.subdistrict.value || el.district.value;
        if (!code) { $("grant-error").textContent = M.district_needed; return; }
        grant.area_code = code;
      } else if (kind === "drawn") {
        if (!drawn) { $("grant-error").textContent = M.draw_needed; return; }
        grant.area = drawn;
      }
      if (el.attributes.value.trim()) grant.attributes = list(el.attributes.value);
      if (el.expires_at.value) grant.expires_at = el.expires_at.value + "T23:59:59+08:00";
      try {
        await api("POST", base + "/grants", grant);
        form.reset();
        clearDrawing();
        await loadGrants();
      } catch (err) {
        $("grant-error").textContent = errorText(err);
      }
    });

    fillAreas($("grant-district"), { level: "district" }, M.choose_district)
      .catch((err) => { $("grant-error").textContent = errorText(err); });
    if (window.maplibregl) startMap();
    else loadGrants().catch((err) => { $("grant-error").textContent = errorText(err); });
  }

  // Loaded before console.js: by DOMContentLoaded every deferred script has run.
  document.addEventListener("DOMContentLoaded", () => {
    if (document.body.dataset.page === "layer" && window.geoConsole) initGrants();
  });
})();
