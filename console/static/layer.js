/* A layer's page: catalogue fields, schema, the paged feature table with its CQL2 filter and
   the map preview, all through the API (see console.js); its edit history is layer_history.js's,
   its grants grant_area.js's, and downloads are a plain form. */
(() => {
  "use strict";
  const { M, $, api, fmt, cell, list, enc, errorText, restoreForms } =
    window.geoConsole;
  const PAGE = 10;
  function initLayer() {
    const id = $("layer-title").dataset.layer;
    const base = "/collections/" + enc(id);
    let offset = 0;
    let columns = [];

    async function loadFeatures() {
      $("features-error").textContent = "";
      const params = new URLSearchParams({ limit: PAGE, offset });
      const filter = $("filter").value.trim();
      if (filter) { params.set("filter", filter); params.set("filter-lang", "cql2-text"); }
      try {
        const page = await api("GET", base + "/items?" + params);
        const head = $("features-head");
        head.replaceChildren();
        for (const name of ["id", ...columns]) {
          const th = document.createElement("th");
          th.scope = "col";
          th.textContent = name;
          head.appendChild(th);
        }
        const tbody = $("features-body");
        tbody.replaceChildren();
        for (const f of page.features) {
          const tr = document.createElement("tr");
          cell(tr, f.id);
          for (const name of columns) cell(tr, f.properties[name]);
          tbody.appendChild(tr);
        }
        const total = page.numberMatched ?? page.features.length;
        $("features-range").textContent = fmt("page_of", {
          from: total ? offset + 1 : 0, to: offset + page.features.length, total,
        });
        $("features-prev").disabled = offset === 0;
        $("features-next").disabled = offset + page.features.length >= total;
      } catch (err) {
        $("features-error").textContent = errorText(err);
      }
    }

    function drawMap(collection) {
      if (!window.maplibregl) return;
      const map = new maplibregl.Map({
        container: "layer-map",
        style: { version: 8, sources: {}, layers: [
          { id: "bg", type: "background", paint: { "background-color": "#f6f4ee" } }] },
        center: [117.2, 39.13], zoom: 8, attributionControl: false,
      });
      window.consoleMap = map;
      map.on("load", async () => {
        const data = await api("GET", base + "/items?limit=1000");
        map.addSource("layer", { type: "geojson", data });
        map.addLayer({ id: "fill", type: "fill", source: "layer",
          filter: ["==", ["geometry-type"], "Polygon"],
          paint: { "fill-color": "#4a3f8c", "fill-opacity": 0.3 } });
        map.addLayer({ id: "line", type: "line", source: "layer",
          filter: ["==", ["geometry-type"], "LineString"], paint: { "line-color": "#4a3f8c" } });
        map.addLayer({ id: "points", type: "circle", source: "layer",
          filter: ["==", ["geometry-type"], "Point"],
          paint: { "circle-color": "#c0392b", "circle-radius": 5 } });
        const box = collection.extent && collection.extent.spatial.bbox[0];
        if (box && box.length === 4 && data.features.length) {
          map.fitBounds([[box[0], box[1]], [box[2], box[3]]], { padding: 30, maxZoom: 15, duration: 0 });
        }
        map.once("idle", () => { window.consoleMapReady = data.features.length; });
        follow(map);
      });
    }

    /* Live refresh (GET /events, tiles/events.py; the session cookie goes with it): a change
       to this layer, by anyone, reloads the map's features and the table's page, no reload.
       The first `ready` reloads the map too: a change made between its first load and the
       stream's start is told by no event. */
    function follow(map) {
      if (!window.EventSource) return;
      const events = new EventSource("/events?layers=" + enc(id));
      let version = null;
      const changed = async (message) => {
        const data = JSON.parse(message.data);
        const now = message.type === "ready" ? data.layers[id] : data.version;
        if (now === version) return;
        const first = version === null;
        version = now;
        try {
          map.getSource("layer").setData(await api("GET", base + "/items?limit=1000"));
        } catch (err) {
          $("features-error").textContent = errorText(err);
          return;
        }
        if (!first) await loadFeatures();
        window.consoleMapRefreshes = (window.consoleMapRefreshes || 0) + 1;
      };
      events.addEventListener("ready", changed);
      events.addEventListener("version", changed);
    }

    (async () => {
      let collection;
      try {
        collection = await api("GET", base);
      } catch (err) {
        $("layer-error").textContent = errorText(err);
        return;
      }
      $("layer-title").textContent = collection.title || id;
      columns = (collection.properties || []).map((p) => p.name);
      const schema = $("schema-body");
      for (const p of collection.properties || []) {
        const tr = document.createElement("tr");
        cell(tr, p.name);
        cell(tr, p.type);
        schema.appendChild(tr);
      }
      drawMap(collection);
      loadFeatures();
      try {
        const record = await api("GET", "/catalogue/collections/layers/items/" + enc(id));
        const form = $("catalogue-form");
        form.elements.title.value = record.properties.title || "";
        form.elements.description.value = record.properties.description || "";
        form.elements.keywords.value = (record.properties.keywords || []).join(", ");
        form.elements.sharing_type.value = record.properties.sharingType;
        restoreForms();
      } catch (err) {
        $("catalogue-status").textContent = errorText(err);
      }
    })();

    $("filter-form").addEventListener("submit", (event) => {
      event.preventDefault();
      offset = 0;
      loadFeatures();
    });
    $("features-prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); loadFeatures(); });
    $("features-next").addEventListener("click", () => { offset += PAGE; loadFeatures(); });
    $("catalogue-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = event.target;
      try {
        await api("PATCH", base + "/catalogue-entry", {
          title: form.elements.title.value || null,
          description: form.elements.description.value || null,
          keywords: list(form.elements.keywords.value),
          sharing_type: form.elements.sharing_type.value,
        });
        $("catalogue-status").textContent = M.saved;
      } catch (err) {
        $("catalogue-status").textContent = errorText(err);
      }
    });
  }

  window.geoConsole.pages.layer = initLayer;
})();
