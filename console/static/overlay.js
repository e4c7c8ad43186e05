/* The overlay page (叠加分析): POST /overlay with the person's cookie (see console.js), the
   answer's aggregates as a table and a choropleth (MapLibre, classes from the values), and the
   same request again, whole, as a GeoJSON or CSV download. The API is synchronous: the page
   shows an indeterminate bar and the seconds spent while it waits. */
(() => {
  "use strict";
  const { M, $, api, fmt, cell, enc, errorText, keepForms, restoreForms, body } =
    window.geoConsole;
  const SHOWN = 5000;     // groups drawn and listed; the download asks for all of them
  const ALL = 100000;     // layers.routers.analysis.MAX_OVERLAY_LIMIT
  const TABLE_ROWS = 500;
  // ColorBrewer "Purples", 5 classes: light to dark, the console's accent at the top.
  const COLOURS = ["#f2f0f7", "#cbc9e2", "#9e9ac8", "#756bb1", "#54278f"];
  const NO_VALUE = "#d9d9d9";
  const number = (v) => Number(v).toLocaleString(document.documentElement.lang,
    { maximumFractionDigits: 2 });

  /* Quantile class breaks over the distinct values: at most COLOURS.length classes, each
     break strictly above the one before (MapLibre's `step` needs that). */
  function classes(values) {
    const sorted = [...new Set(values)].sort((a, b) => a - b);
    const breaks = [];
    for (let i = 1; i < COLOURS.length; i++) {
      const b = sorted[Math.floor((i * sorted.length) / COLOURS.length)];
      if (b !== undefined && b > sorted[0] && (!breaks.length || b > breaks[breaks.length - 1])) {
        breaks.push(b);
      }
    }
    return { min: sorted[0], max: sorted[sorted.length - 1], breaks };
  }

  /* Class i of n, spread over the whole palette: two classes are its two ends. */
  function colour(i, cls) {
    const n = cls.breaks.length + 1;
    const last = COLOURS.length - 1;
    return COLOURS[n === 1 ? Math.floor(last / 2) : Math.round((i * last) / (n - 1))];
  }

  function colourExpression(field, cls) {
    const step = ["step", ["get", field], colour(0, cls)];
    cls.breaks.forEach((b, i) => step.push(b, colour(i + 1, cls)));
    return ["case", ["==", ["typeof", ["get", field]], "number"], step, NO_VALUE];
  }

  function bounds(features) {
    const box = [Infinity, Infinity, -Infinity, -Infinity];
    const walk = (c) => {
      if (typeof c[0] === "number") {
        box[0] = Math.min(box[0], c[0]); box[1] = Math.min(box[1], c[1]);
        box[2] = Math.max(box[2], c[0]); box[3] = Math.max(box[3], c[1]);
      } else c.forEach(walk);
    };
    for (const f of features) if (f.geometry) walk(f.geometry.coordinates);
    return box[0] <= box[2] ? [[box[0], box[1]], [box[2], box[3]]] : null;
  }

  function initOverlay() {
    const form = $("overlay-form");
    const view = { map: null, last: null };
    window.overlayView = view;

    function numericOf(select) {
      const option = select.selectedOptions[0];
      return option && option.dataset.numeric ? option.dataset.numeric.split(",") : [];
    }
    function syncChoices() {
      const f = form.elements;
      const kept = f.property.value;
      const names = numericOf(f.layer);
      f.property.replaceChildren();
      if (!names.length) {
        const option = new Option(M.overlay_no_numeric, "");
        f.property.appendChild(option);
      }
      for (const name of names) f.property.appendChild(new Option(name, name, false, name === kept));
      f.property.disabled = f.aggregate.value === "count" || !names.length;
      f.distance.disabled = f.predicate.value !== "dwithin";
    }
    ["layer", "aggregate", "predicate"].forEach((name) =>
      form.elements[name].addEventListener("change", syncChoices));
    syncChoices();
    restoreForms();
    syncChoices();

    /* The request the form describes, or the Chinese reason it cannot be sent. */
    function described() {
      const f = form.elements;
      if (!f.layer.value || !f.other.value) throw new Error(M.overlay_err_no_layer);
      const request = { layer: f.layer.value, other: f.other.value, predicate: f.predicate.value,
        output: "aggregate" };
      if (request.predicate === "dwithin") {
        const metres = Number(f.distance.value);
        if (!(metres > 0 && metres <= Number(f.distance.max))) throw new Error(M.overlay_err_distance);
        request.distance = metres;
      }
      let field = "count";
      if (f.aggregate.value !== "count") {
        if (!f.property.value) {
          throw new Error(fmt("overlay_err_no_property",
            { aggregate: M["aggregate_" + f.aggregate.value] }));
        }
        request.property = f.property.value;
        field = f.property.value + "_" + f.aggregate.value;
      }
      return { request, field };
    }

    function explain(err, request) {
      if (err.status === 404) {
        const message = (err.body && err.body.message) || "";
        const layer = [request.other, request.layer].find((id) => message.includes(id)) || request.layer;
        return fmt("overlay_err_unreadable", { layer });
      }
      if (err.status === 400 || err.status === 422) {
        return fmt("overlay_err_bad", { message: (err.body && err.body.message) || "" });
      }
      return errorText(err);
    }

    function drawTable(features, field) {
      const names = features.length ? Object.keys(features[0].properties) : [];
      const head = $("overlay-head");
      head.replaceChildren();
      for (const name of ["id", ...names]) {
        const th = document.createElement("th");
        th.scope = "col";
        th.textContent = name;
        if (name === field) th.className = "overlay-value";
        head.appendChild(th);
      }
      const tbody = $("overlay-body");
      tbody.replaceChildren();
      for (const f of features.slice(0, TABLE_ROWS)) {
        const tr = document.createElement("tr");
        cell(tr, f.id);
        for (const name of names) {
          const v = f.properties[name];
          cell(tr, typeof v === "number" ? number(v) : v);
        }
        tbody.appendChild(tr);
      }
      $("overlay-table-note").textContent = fmt("overlay_table_note",
        { shown: Math.min(TABLE_ROWS, features.length), rows: features.length });
    }

    function drawLegend(field, cls, hasNull) {
      const legend = $("overlay-legend");
      legend.replaceChildren();
      const title = document.createElement("p");
      title.className = "legend-title";
      title.textContent = M.overlay_legend + "：" + field;
      legend.appendChild(title);
      const ul = document.createElement("ul");
      const edges = [cls.min, ...cls.breaks, cls.max];
      const entry = (colour, text) => {
        const li = document.createElement("li");
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = colour;
        li.append(swatch, document.createTextNode(text));
        ul.appendChild(li);
      };
      if (cls.min !== undefined) {
        for (let i = 0; i < edges.length - 1; i++) {
          const last = i === edges.length - 2;
          const range = edges[i] === edges[i + 1] ? number(edges[i])
            : `${number(edges[i])} – ${last ? "" : "< "}${number(edges[i + 1])}`;
          entry(colour(i, cls), range);
        }
      }
      if (hasNull) entry(NO_VALUE, M.overlay_no_value);
      legend.appendChild(ul);
    }

    function drawMap(data, field) {
      const values = data.features.map((f) => f.properties[field]).filter((v) => typeof v === "number");
      const cls = classes(values);
      drawLegend(field, cls, values.length < data.features.length);
      const paint = colourExpression(field, cls);
      const show = (map) => {
        if (map.getSource("overlay")) {
          map.getSource("overlay").setData(data);
        } else {
          map.addSource("overlay", { type: "geojson", data });
          map.addLayer({ id: "overlay-fill", type: "fill", source: "overlay",
            filter: ["==", ["geometry-type"], "Polygon"], paint: { "fill-opacity": 0.85 } });
          map.addLayer({ id: "overlay-line", type: "line", source: "overlay",
            filter: ["!=", ["geometry-type"], "Point"],
            paint: { "line-color": "#3b3355", "line-width": 0.6 } });
          map.addLayer({ id: "overlay-points", type: "circle", source: "overlay",
            filter: ["==", ["geometry-type"], "Point"],
            paint: { "circle-radius": 6, "circle-stroke-color": "#3b3355", "circle-stroke-width": 1 } });
        }
        map.setPaintProperty("overlay-fill", "fill-color", paint);
        map.setPaintProperty("overlay-points", "circle-color", paint);
        const box = bounds(data.features);
        if (box) map.fitBounds(box, { padding: 20, maxZoom: 15, duration: 0 });
        map.once("idle", () => { view.drawn = (view.drawn || 0) + 1; });
      };
      if (!window.maplibregl) return;
      if (!view.map) {
        view.map = new maplibregl.Map({
          container: "overlay-map",
          style: { version: 8, sources: {}, layers: [
            { id: "bg", type: "background", paint: { "background-color": "#f6f4ee" } }] },
          center: [117.2, 39.13], zoom: 8, attributionControl: false,
        });
        view.map.addControl(new maplibregl.NavigationControl(), "top-right");
        view.map.on("load", () => show(view.map));
      } else {
        show(view.map);
      }
    }

    let running = false;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (running) return;  // a second click while the first overlay runs
      $("overlay-error").replaceChildren();
      $("overlay-status").textContent = "";
      let asked;
      try {
        asked = described();
      } catch (err) {
        $("overlay-error").textContent = err.message;
        return;
      }
      running = true;
      $("overlay-run").disabled = true;
      const progress = $("overlay-progress");
      progress.hidden = false;
      const started = performance.now();
      const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
      const tick = setInterval(() => {
        $("overlay-status").textContent = fmt("overlay_running", { seconds: seconds() });
      }, 250);
      $("overlay-status").textContent = fmt("overlay_running", { seconds: seconds() });
      try {
        const data = await api("POST", "/overlay", { ...asked.request, limit: SHOWN });
        clearInterval(tick);
        view.last = asked;
        $("overlay-status").textContent = fmt("overlay_done",
          { rows: data.features.length, seconds: seconds() });
        $("overlay-truncated").hidden = !data.truncated;
        $("overlay-truncated").textContent = data.truncated ? fmt("overlay_truncated", { rows: SHOWN }) : "";
        $("overlay-result").hidden = false;
        drawTable(data.features, asked.field);
        drawMap(data, asked.field);
        view.result = data;
      } catch (err) {
        clearInterval(tick);
        $("overlay-status").textContent = "";
        $("overlay-error").textContent = explain(err, asked.request);
      } finally {
        running = false;
        $("overlay-run").disabled = false;
        progress.hidden = true;
      }
    });

    /* The last overlay run, whole (up to the API's limit), in the format and CRS asked. */
    async function download(format) {
      const status = $("overlay-download-status");
      if (!view.last) return;
      const request = { ...view.last.request, format, crs: $("overlay-crs").value, limit: ALL };
      status.textContent = M.overlay_downloading;
      let response;
      try {
        response = await fetch("/overlay", {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": body.dataset.csrf },
          body: JSON.stringify(request),
        });
      } catch (e) {
        status.textContent = M.err_network;
        return;
      }
      if (!response.ok) {
        let data = null;
        try { data = await response.json(); } catch (e) { data = null; }
        if (response.status === 401) {
          keepForms();
          location.href = "/console/login?expired=1&next=" + enc(location.pathname + location.search);
          return;
        }
        status.textContent = explain({ status: response.status, body: data || {} }, request);
        return;
      }
      const blob = await response.blob();
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `${request.layer}-${request.other}.${format === "csv" ? "csv" : "geojson"}`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
      status.textContent = "";
      view.downloads = [...(view.downloads || []), { format, name: a.download, size: blob.size }];
    }
    $("download-geojson").addEventListener("click", () => download("geojson"));
    $("download-csv").addEventListener("click", () => download("csv"));
  }

  window.geoConsole.pages.overlay = initOverlay;
})();
