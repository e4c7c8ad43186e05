/* The 地址 / Addresses page: search as you type (/addresses/suggest, /addresses/geocode), the
   chosen address on the map with its areas (/addresses/reverse at its location, outlines from
   /areas and /grids), a click on the map reverse-geocoded, and batch geocoding: the file read
   into rows by the console (POST /console/addresses/table), geocoded through the API's batch
   (POST /addresses/geocode/batch, NDJSON streamed: the progress bar counts its lines), fixed up
   here, downloaded (CSV built here, XLSX written by the console) or saved as a layer through
   POST /collections/{id}/upload. Fix-ups live in this page until then (docs/decisions.md). */
(() => {
  "use strict";
  const { M, $, api, fmt, cell, enc, errorText, restoreForms, body } = window.geoConsole;
  const csrf = body.dataset.csrf;
  const PAGE = 50;
  // Addresses per batch request: well under the API's JSON body limit (16 MB) even at 200
  // characters an address, and enough chunks (1,000 each) to keep its worker processes busy.
  const SLICE = 10000;
  const EMPTY = { type: "FeatureCollection", features: [] };
  const LEVELS = ["district", "subdistrict", "community", "grid"];

  const state = {
    map: null, marker: null, table: null, column: -1, results: [], view: [], offset: 0,
    fixing: null, placing: false, fileName: "result",
  };

  /* ---------------- the map ---------------- */
  async function initMap() {
    if (!window.maplibregl) return;
    const style = { version: 8, sources: {}, layers: [
      { id: "bg", type: "background", paint: { "background-color": "#f6f4ee" } }] };
    try {
      // District and subdistrict outlines from the service's own tiles: context only.
      const base = await api("GET", "/styles/districts,subdistricts.json");
      for (const [name, source] of Object.entries(base.sources)) {
        if (source.type === "vector") style.sources[name] = source;
      }
      for (const layer of base.layers) {
        if (layer.type === "line" && style.sources[layer.source]) style.layers.push(layer);
      }
    } catch (err) { /* the page works without its basemap */ }
    const map = new maplibregl.Map({
      container: "addr-map", style, center: [117.2, 39.13], zoom: 9, attributionControl: false,
    });
    state.map = map;
    window.addressesMap = map;
    map.addControl(new maplibregl.NavigationControl(), "top-right");
    map.on("load", () => {
      map.addSource("areas", { type: "geojson", data: EMPTY });
      map.addLayer({ id: "areas-fill", type: "fill", source: "areas", paint: {
        "fill-color": ["match", ["get", "level"], "grid", "#c0392b", "community", "#1f618d", "#6c3483"],
        "fill-opacity": 0.12 } });
      map.addLayer({ id: "areas-line", type: "line", source: "areas", paint: {
        "line-color": ["match", ["get", "level"], "grid", "#c0392b", "community", "#1f618d", "#6c3483"],
        "line-width": 2 } });
      map.addSource("batch", { type: "geojson", data: EMPTY });
      map.addLayer({ id: "batch-points", type: "circle", source: "batch", paint: {
        "circle-radius": 4, "circle-stroke-color": "#fff", "circle-stroke-width": 1,
        "circle-color": ["case", ["get", "low"], "#b9770e", "#1e8449"] } });
      window.addressesMapReady = true;
    });
    map.on("click", (e) => {
      if (state.placing) placeFix(e.lngLat);
      else reverseAt(e.lngLat).catch((err) => { $("reverse-result").textContent = errorText(err); });
    });
  }

  function mark(lon, lat, zoom) {
    if (!state.map) return;
    if (!state.marker) state.marker = new maplibregl.Marker({ color: "#c0392b" });
    state.marker.setLngLat([lon, lat]).addTo(state.map);
    state.map.jumpTo({ center: [lon, lat], zoom: Math.max(state.map.getZoom(), zoom) });
  }

  /* The outlines of the subdistrict, community and grid an answer names. */
  async function drawAreas(answer) {
    const asks = [];
    for (const level of ["subdistrict", "community"]) {
      if (answer[level]) asks.push(api("GET", "/areas/" + enc(answer[level].code)).then((a) => [level, a]));
    }
    if (answer.grid && answer.grid.code) {
      asks.push(api("GET", "/grids/" + enc(answer.grid.code)).then((g) => ["grid", g]));
    }
    const found = await Promise.allSettled(asks);
    const features = found.filter((r) => r.status === "fulfilled" && r.value[1].geometry)
      .map((r) => ({ type: "Feature", geometry: r.value[1].geometry,
        properties: { level: r.value[0], name: r.value[1].name } }));
    if (state.map && state.map.getSource("areas")) {
      state.map.getSource("areas").setData({ type: "FeatureCollection", features });
    }
    window.addressesAreasDrawn = features.map((f) => f.properties.level);
  }

  /* The areas of an answer (reverse, at a point), and each level missing or estimated with
     the API's reason. */
  function renderPlace(box, answer) {
    box.replaceChildren();
    const dl = document.createElement("dl");
    dl.className = "fields";
    for (const level of LEVELS) {
      const dt = document.createElement("dt");
      dt.textContent = M["addr_" + level];
      const dd = document.createElement("dd");
      const area = answer[level];
      dd.textContent = area && area.name ? `${area.name}（${area.code}）` : M.addr_none;
      dd.dataset.level = level;
      dl.append(dt, dd);
    }
    box.appendChild(dl);
    const notes = document.createElement("ul");
    notes.className = "notes";
    for (const [key, list] of [["addr_missing", answer.missing], ["addr_estimated", answer.estimated]]) {
      for (const item of list || []) {
        const li = document.createElement("li");
        li.textContent = fmt(key, { level: M["addr_" + item.level] || item.level, reason: item.reason });
        li.dataset.level = item.level;
        notes.appendChild(li);
      }
    }
    if (notes.children.length) box.appendChild(notes);
  }

  const reverseUrl = (lon, lat) => `/addresses/reverse?lon=${lon.toFixed(7)}&lat=${lat.toFixed(7)}`;

  async function reverseAt(lngLat) {
    const answer = await api("GET", reverseUrl(lngLat.lng, lngLat.lat));
    const box = $("reverse-result");
    box.replaceChildren();
    const p = document.createElement("p");
    p.textContent = answer.address
      ? fmt("addr_distance", { m: Math.round(answer.address.distance), standard: answer.address.standard })
      : M.addr_no_address;
    box.appendChild(p);
    const place = document.createElement("div");
    box.appendChild(place);
    renderPlace(place, answer);
    mark(lngLat.lng, lngLat.lat, 0);
    await drawAreas(answer);
    window.addressesReverse = answer;
  }

  /* ---------------- search as you type ---------------- */
  const levelName = (level) => (level ? M["level_" + level] || level : M.level_unmatched);
  let typed = 0;
  let timer = null;
  let active = -1;

  function hideSuggestions() {
    $("addr-suggestions").hidden = true;
    $("addr-q").setAttribute("aria-expanded", "false");
    $("addr-q").removeAttribute("aria-activedescendant");
    active = -1;
  }

  async function suggest() {
    const q = $("addr-q").value.trim();
    const mine = ++typed;
    if (!q) { hideSuggestions(); return; }
    let found;
    try {
      found = await api("GET", "/addresses/suggest?limit=8&q=" + enc(q));
    } catch (err) {
      $("addr-error").textContent = errorText(err);
      return;
    }
    if (mine !== typed) return;  // an older answer than the text now typed
    const list = $("addr-suggestions");
    list.replaceChildren();
    found.suggestions.forEach((s, i) => {
      const li = document.createElement("li");
      li.id = "addr-suggestion-" + i;
      li.setAttribute("role", "option");
      li.textContent = s.label;
      li.addEventListener("mousedown", (e) => { e.preventDefault(); choose(s.label); });
      list.appendChild(li);
    });
    list.hidden = found.suggestions.length === 0;
    $("addr-q").setAttribute("aria-expanded", String(!list.hidden));
    active = -1;
  }

  function moveActive(step) {
    const items = [...$("addr-suggestions").children];
    if (!items.length || $("addr-suggestions").hidden) return;
    active = (active + step + items.length) % items.length;
    items.forEach((li, i) => li.setAttribute("aria-selected", String(i === active)));
    $("addr-q").setAttribute("aria-activedescendant", items[active].id);
  }

  function choose(text) {
    $("addr-q").value = text;
    hideSuggestions();
    geocodeText(text).catch((err) => { $("addr-error").textContent = errorText(err); });
  }

  async function geocodeText(q) {
    $("addr-error").textContent = "";
    const found = await api("GET", "/addresses/geocode?limit=5&q=" + enc(q));
    const list = $("addr-results");
    list.replaceChildren();
    if (!found.candidates.length) {
      $("addr-error").textContent = M.addr_no_match;
      return;
    }
    for (const c of found.candidates) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.textContent = `${c.standard}（${levelName(c.level)}，${M.addr_score} ${c.score}）`;
      button.addEventListener("click", () => {
        showCandidate(c).catch((err) => { $("addr-error").textContent = errorText(err); });
      });
      li.appendChild(button);
      if (!c.confident) li.classList.add("low");
      list.appendChild(li);
    }
    await showCandidate(found.candidates[0]);
  }

  async function showCandidate(c) {
    const [lon, lat] = c.location.coordinates;
    mark(lon, lat, 15);
    const answer = await api("GET", reverseUrl(lon, lat));
    // An address's own record says which of its levels are missing or estimated, and why.
    const place = c.missing ? { ...answer, missing: c.missing, estimated: c.estimated } : answer;
    renderPlace($("addr-place"), place);
    await drawAreas(answer);
    window.addressesShown = c.standard;
  }

  /* ---------------- batch: read, geocode, fix, download, save ---------------- */
  const isLow = (r) => !r || r.confident !== true;
  const hasPoint = (r) => r && Number.isFinite(r.lon) && Number.isFinite(r.lat);
  const tableError = {
    UnsupportedMediaType: "err_UnsupportedMediaType_table", InvalidFile: "err_InvalidFile_table",
  };

  function batchError(err) {
    const code = err.body && err.body.code;
    if (code === "TooManyRows") return fmt("err_TooManyRows", err.body.details || {});
    if (tableError[code]) return M[tableError[code]];
    return errorText(err);
  }

  function resetBatch() {
    state.table = null;
    state.results = [];
    $("batch-result").hidden = true;
    $("batch-error").textContent = "";
    $("batch-status").textContent = "";
    $("batch-start").disabled = true;
    const select = $("batch-column");
    select.replaceChildren();
    select.disabled = true;
  }

  function readTable(file) {
    resetBatch();
    state.fileName = file.name.replace(/\.[^.]*$/, "") || "result";
    const progress = $("batch-progress");
    const data = new FormData();
    data.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/console/addresses/table");
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) progress.value = Math.round((e.loaded / e.total) * 100);
    };
    xhr.upload.onload = () => progress.removeAttribute("value");
    xhr.onloadend = () => {
      progress.hidden = true;
      let answer = null;
      try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = null; }
      if (xhr.status !== 200) {
        if (xhr.status === 401) { signInAgain(); return; }
        $("batch-status").textContent = "";
        $("batch-error").textContent = batchError({ status: xhr.status, body: answer || {} });
        return;
      }
      tableRead(answer);
    };
    progress.hidden = false;
    progress.value = 0;
    $("batch-status").textContent = M.batch_reading;
    xhr.send(data);
  }

  function tableRead(table) {
    state.table = table;
    const select = $("batch-column");
    if (!table.address_column) {
      const blank = document.createElement("option");
      blank.value = "";
      blank.textContent = "—";
      select.appendChild(blank);
    }
    for (const name of table.text_columns) {
      const option = document.createElement("option");
      option.value = option.textContent = name;
      select.appendChild(option);
    }
    select.value = table.address_column || "";
    select.disabled = false;
    $("batch-start").disabled = !select.value;
    const read = fmt("batch_read", { rows: table.rows.length, columns: table.columns.length });
    $("batch-status").textContent = table.address_column ? read : read + " " + M.batch_pick_column;
    window.addressesTableRead = table.rows.length;
  }

  function signInAgain() {
    window.geoConsole.keepForms();
    location.href = "/console/login?expired=1&next=" + enc(location.pathname + location.search);
  }

  /* One request of the batch API: its NDJSON lines, counted as they arrive. */
  async function geocodeSlice(texts, into, start, onLine) {
    const response = await fetch("/addresses/geocode/batch?f=ndjson", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/x-ndjson", "X-CSRF-Token": csrf },
      body: JSON.stringify(texts),
    });
    if (!response.ok) {
      if (response.status === 401) { signInAgain(); return new Promise(() => {}); }
      let data = {};
      try { data = await response.json(); } catch (e) { data = {}; }
      throw Object.assign(new Error(data.message || String(response.status)), {
        status: response.status, body: data });
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let rest = "";
    let at = start;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const lines = (rest + decoder.decode(value, { stream: true })).split("\n");
      rest = lines.pop();
      for (const line of lines) {
        if (!line) continue;
        const m = JSON.parse(line);
        into[at++] = { address_id: m.address_id, code: m.code, standard: m.standard, level: m.level,
          score: m.score, confident: m.confident, lon: m.lon, lat: m.lat, fixed: null };
      }
      onLine(at);
    }
    if (at !== start + texts.length) throw Object.assign(new Error(M.err_network), { status: 0, body: {} });
  }

  async function geocodeAll() {
    const table = state.table;
    state.column = table.columns.indexOf($("batch-column").value);
    const texts = table.rows.map((r) => r[state.column]);
    const total = texts.length;
    const results = new Array(total);
    const progress = $("batch-progress");
    const started = performance.now();
    progress.hidden = false;
    progress.value = 0;
    $("batch-start").disabled = true;
    $("batch-error").textContent = "";
    window.addressesProgress = [];
    const shown = (done) => {
      window.addressesProgress.push(done);
      progress.value = Math.round((done / total) * 100);
      $("batch-status").textContent = fmt("batch_running", { done, total });
    };
    shown(0);
    try {
      for (let start = 0; start < total; start += SLICE) {
        await geocodeSlice(texts.slice(start, start + SLICE), results, start, shown);
      }
    } catch (err) {
      $("batch-error").textContent = errorText(err);
      $("batch-status").textContent = "";
      return;
    } finally {
      progress.hidden = true;
      $("batch-start").disabled = false;
    }
    state.results = results;
    state.offset = 0;
    $("batch-low-only").checked = false;
    filterView();
    $("batch-result").hidden = false;
    renderTable();
    summarize();
    drawBatch();
    fitBatch();
    window.addressesBatch = { rows: total, ms: performance.now() - started };
  }

  function summarize() {
    const r = state.results;
    const low = r.filter(isLow).length;
    const unmatched = r.filter((x) => !x.level).length;
    const fixed = r.filter((x) => x.fixed).length;
    let text = fmt("batch_done", { total: r.length, confident: r.length - low, low, unmatched });
    if (fixed) text += " " + fmt("batch_fixed", { fixed });
    $("batch-summary").textContent = text;
    const without = r.filter((x) => !hasPoint(x)).length;
    $("save-help").textContent = fmt("batch_save_help", { n: without });
  }

  function filterView() {
    const all = state.results.map((_, i) => i);
    state.view = $("batch-low-only").checked ? all.filter((i) => isLow(state.results[i])) : all;
  }

  const cellText = (v) => (v == null ? "" : typeof v === "boolean" ? (v ? "true" : "false") : String(v));
  const matchValues = (r) => [r.address_id, r.code, r.standard, r.level, r.score, r.confident, r.lon, r.lat];

  function renderTable() {
    const table = state.table;
    const head = $("batch-head");
    head.replaceChildren();
    for (const name of [M.batch_row, ...table.columns, ...table.match_columns, M.batch_fix]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = name;
      head.appendChild(th);
    }
    const tbody = $("batch-body");
    tbody.replaceChildren();
    const page = state.view.slice(state.offset, state.offset + PAGE);
    for (const i of page) {
      const r = state.results[i];
      const tr = document.createElement("tr");
      tr.dataset.row = String(i + 1);
      if (r.fixed) tr.className = "fixed";
      else if (isLow(r)) tr.className = "low";
      cell(tr, i + 1);
      for (const v of table.rows[i]) cell(tr, v);
      const values = matchValues(r).map(cellText);
      values[3] = r.level ? `${levelName(r.level)}（${r.level}）` : M.level_unmatched;
      for (const v of values) cell(tr, v);
      const action = cell(tr, "");
      if (isLow(r) || r.fixed) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "fix";
        button.textContent = M.batch_fix;
        button.setAttribute("aria-label", fmt("batch_fix_row", { row: i + 1 }));
        button.addEventListener("click", () => openFix(i));
        action.appendChild(button);
      }
      tbody.appendChild(tr);
    }
    const total = state.view.length;
    $("batch-range").textContent = fmt("batch_range", {
      from: total ? state.offset + 1 : 0, to: state.offset + page.length, total });
    $("batch-prev").disabled = state.offset === 0;
    $("batch-next").disabled = state.offset + PAGE >= total;
  }

  function drawBatch() {
    if (!state.map || !state.map.getSource("batch")) return;
    const features = [];
    state.results.forEach((r, i) => {
      if (hasPoint(r)) {
        features.push({ type: "Feature", geometry: { type: "Point", coordinates: [r.lon, r.lat] },
          properties: { row: i + 1, low: isLow(r) } });
      }
    });
    state.map.getSource("batch").setData({ type: "FeatureCollection", features });
  }

  /* The map shows where the file's rows landed. */
  function fitBatch() {
    const box = [[Infinity, Infinity], [-Infinity, -Infinity]];
    for (const r of state.results) {
      if (!hasPoint(r)) continue;
      box[0] = [Math.min(box[0][0], r.lon), Math.min(box[0][1], r.lat)];
      box[1] = [Math.max(box[1][0], r.lon), Math.max(box[1][1], r.lat)];
    }
    if (state.map && Number.isFinite(box[0][0])) {
      state.map.fitBounds(box, { padding: 30, maxZoom: 14, duration: 0 });
    }
  }

  async function openFix(i) {
    state.fixing = i;
    state.placing = false;
    const text = state.table.rows[i][state.column] || "";
    $("fix-panel").hidden = false;
    $("fix-title").textContent = fmt("batch_fix_row", { row: i + 1 });
    $("fix-text").textContent = text;
    $("fix-status").textContent = "";
    // The row's current match, if any, is where the person starts looking.
    if (hasPoint(state.results[i])) mark(state.results[i].lon, state.results[i].lat, 14);
    const list = $("fix-candidates");
    list.replaceChildren();
    $("fix-panel").scrollIntoView({ block: "nearest" });
    if (!text.trim()) { $("fix-status").textContent = M.batch_no_candidates; return; }
    let found;
    try {
      found = await api("GET", "/addresses/geocode?limit=5&q=" + enc(text));
    } catch (err) {
      $("fix-status").textContent = errorText(err);
      return;
    }
    if (state.fixing !== i) return;
    if (!found.candidates.length) $("fix-status").textContent = M.batch_no_candidates;
    for (const c of found.candidates) {
      const li = document.createElement("li");
      li.textContent = `${c.standard}（${levelName(c.level)}，${M.addr_score} ${c.score}） `;
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = M.batch_use;
      button.setAttribute("aria-label", `${M.batch_use} ${c.standard}`);
      button.addEventListener("click", () => {
        const [lon, lat] = c.location.coordinates;
        // A candidate a person picked is confirmed: confident, at its own level and score.
        fixRow(i, { address_id: c.id, code: c.code, standard: c.standard, level: c.level,
          score: c.score, confident: true, lon, lat, fixed: "candidate" });
      });
      li.appendChild(button);
      list.appendChild(li);
    }
  }

  function placeFix(lngLat) {
    state.placing = false;
    state.map.getCanvas().style.cursor = "";
    const round = (v) => Math.round(v * 1e7) / 1e7;
    // A point placed by hand: level "manual", no score, no library address.
    fixRow(state.fixing, { address_id: null, code: null, standard: null, level: "manual",
      score: null, confident: true, lon: round(lngLat.lng), lat: round(lngLat.lat), fixed: "manual" });
    mark(lngLat.lng, lngLat.lat, 0);
  }

  function fixRow(i, match) {
    state.results[i] = match;
    $("fix-status").textContent = fmt("batch_fixed_row", { row: i + 1 });
    renderTable();
    summarize();
    drawBatch();
  }

  /* The result as CSV text: the file's columns, then the match columns, as the API writes. */
  function resultCsv(onlyPlaced) {
    const quote = (v) => (/[",\r\n]/.test(v) || v !== v.trim() ? `"${v.replace(/"/g, '""')}"` : v);
    const table = state.table;
    const lines = [[...table.columns, ...table.match_columns].map(quote).join(",")];
    state.results.forEach((r, i) => {
      if (onlyPlaced && !hasPoint(r)) return;
      lines.push([...table.rows[i], ...matchValues(r).map(cellText)].map(quote).join(","));
    });
    return lines.join("\r\n") + "\r\n";
  }

  function saveBlob(blob, name) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  }

  async function downloadXlsx() {
    const table = state.table;
    const m = table.match_columns;
    const numeric = [m[0], m[4], m[6], m[7]].join(",");  // address_id, score, lon, lat
    const data = new FormData();
    data.append("file", new Blob([resultCsv(false)], { type: "text/csv" }), "result.csv");
    const response = await fetch("/console/addresses/xlsx?numeric=" + enc(numeric), {
      method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf }, body: data });
    if (!response.ok) {
      if (response.status === 401) { signInAgain(); return; }
      let b = {};
      try { b = await response.json(); } catch (e) { b = {}; }
      throw Object.assign(new Error(b.message || ""), { status: response.status, body: b });
    }
    saveBlob(await response.blob(), state.fileName + "-geocoded.xlsx");
  }

  async function saveLayer(form) {
    const placed = state.results.filter(hasPoint).length;
    if (!placed) { $("save-error").textContent = M.err_no_location; return; }
    const id = form.elements.id.value.trim();
    const m = state.table.match_columns;
    const params = new URLSearchParams({ mode: "create", crs: "EPSG:4326", lon_column: m[6], lat_column: m[7] });
    const data = new FormData();
    data.append("file", new Blob([resultCsv(true)], { type: "text/csv" }), id + ".csv");
    if (form.elements.title.value) {
      data.append("metadata", JSON.stringify({ title: form.elements.title.value }));
    }
    const response = await fetch("/collections/" + enc(id) + "/upload?" + params, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, Accept: "application/json" }, body: data });
    let answer = {};
    try { answer = await response.json(); } catch (e) { answer = {}; }
    if (response.status === 401) { signInAgain(); return; }
    if (!response.ok) throw Object.assign(new Error(answer.message || ""), { status: response.status, body: answer });
    const status = $("save-status");
    status.replaceChildren(fmt("batch_saved", { id, n: answer.features }) + " ");
    const a = document.createElement("a");
    a.href = "/console/layers/" + enc(id);
    a.textContent = M.batch_open_layer;
    status.appendChild(a);
  }

  function initAddresses() {
    restoreForms();
    initMap();
    const q = $("addr-q");
    q.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(suggest, 150); });
    q.addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown") { e.preventDefault(); moveActive(1); }
      else if (e.key === "ArrowUp") { e.preventDefault(); moveActive(-1); }
      else if (e.key === "Escape") hideSuggestions();
    });
    q.addEventListener("blur", () => setTimeout(hideSuggestions, 100));
    $("search-form").addEventListener("submit", (e) => {
      e.preventDefault();
      clearTimeout(timer);
      typed++;  // answers to earlier keystrokes no longer show
      const items = [...$("addr-suggestions").children];
      const picked = active >= 0 && !$("addr-suggestions").hidden ? items[active].textContent : null;
      if (picked || q.value.trim()) choose(picked || q.value.trim());
    });
    $("batch-file").addEventListener("change", (e) => {
      const file = e.target.files[0];
      if (file) readTable(file);
    });
    $("batch-column").addEventListener("change", () => {
      $("batch-start").disabled = !$("batch-column").value;
    });
    $("batch-form").addEventListener("submit", (e) => {
      e.preventDefault();
      if ($("batch-start").disabled || !state.table) return;
      geocodeAll();
    });
    $("batch-low-only").addEventListener("change", () => { state.offset = 0; filterView(); renderTable(); });
    $("batch-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); renderTable(); });
    $("batch-next").addEventListener("click", () => { state.offset += PAGE; renderTable(); });
    $("fix-place").addEventListener("click", () => {
      if (state.fixing === null || !state.map) return;
      state.placing = true;
      state.map.getCanvas().style.cursor = "crosshair";
      $("fix-status").textContent = M.batch_placing;
      $("addr-map").scrollIntoView({ block: "center" });
    });
    $("download-csv").addEventListener("click", () => {
      // With a byte order mark: Excel on a Chinese Windows then reads it as UTF-8, not GBK.
      saveBlob(new Blob(["\ufeff" + resultCsv(false)], { type: "text/csv;charset=utf-8" }),
        state.fileName + "-geocoded.csv");
    });
    $("download-xlsx").addEventListener("click", () => {
      downloadXlsx().catch((err) => { $("batch-error").textContent = errorText(err); });
    });
    $("save-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const submit = $("save-submit");
      if (submit.disabled) return;  // a second click while the first is on its way
      submit.disabled = true;
      $("save-error").textContent = "";
      $("save-status").textContent = "";
      saveLayer(e.target)
        .catch((err) => { $("save-error").textContent = errorText(err); })
        .finally(() => { submit.disabled = false; });
    });
  }

  window.geoConsole.pages.addresses = initAddresses;
})();
