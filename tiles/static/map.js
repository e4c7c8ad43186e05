// The /map viewer: layers from the catalogue, address search, click to identify and reverse
// geocode. Plain JavaScript, no build step; MapLibre GL is served from ./vendor.
//
// A key given as ?key= in the page URL is read once and removed from the address bar (so it
// stays out of history, bookmarks and shared links). The page keeps it in this closure only and
// sends it as a Bearer header on its own API requests (catalogue, search, identify). MapLibre's
// URLs never carry it: the page exchanges it (POST /tiles/token, key in the header) for
// short-lived, read-only tile tokens for the layers shown, asks for the styles with a token, and
// the tile URLs in them carry that token. Tokens are renewed before they expire; transformRequest
// puts the current one on every tile request.
//
// Inside the console (/console/map: the same script, the page's <body> carries the session's
// CSRF token) the session cookie is the credential: tile routes take no cookie, so the page gets
// tile tokens with it exactly as with a key (POST /tiles/token, the CSRF header beside the cookie).
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);
  const key = params.get("key");
  if (key !== null) {
    // Drop every key=... pair; the other parameters stay exactly as written (a shared link).
    const rest = window.location.search.slice(1).split("&")
      .filter((pair) => pair && decodeURIComponent(pair.split("=")[0].replace(/\+/g, " ")) !== "key")
      .join("&");
    window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : "") + window.location.hash);
  }
  const MAX_LAYERS_PER_STYLE = 20;
  const DEFAULT_VIEW = { center: [117.2, 39.13], zoom: 9 };
  const ORIGIN = window.location.origin;
  const csrf = key ? null : document.body.dataset.csrf || null;
  const tokened = Boolean(key || csrf);

  const $ = (id) => document.getElementById(id);
  const state = { map: null, idle: false, layers: [], searchAvailable: true, lastSearch: null };
  window.geoViewer = state;

  function authHeaders() {
    if (key) return { Authorization: "Bearer " + key };
    return csrf ? { "X-CSRF-Token": csrf } : {};
  }

  // Resolves to {status, body}; never throws for HTTP errors, so each caller decides what a 404
  // means (an endpoint not offered by this server is not a failure of the page).
  // options.auth = false leaves the key out (requests authenticated by a token in the URL);
  // options.json = a body to POST.
  async function api(path, options) {
    const opts = options || {};
    const headers = { Accept: "application/json", ...(opts.auth === false ? {} : authHeaders()) };
    const init = { headers };
    if (opts.json !== undefined) {
      init.method = "POST";
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.json);
    }
    try {
      const response = await fetch(path, init);
      let body = null;
      if (response.status !== 204) {
        try { body = await response.json(); } catch (_) { body = null; }
      }
      return { status: response.status, body };
    } catch (err) {
      return { status: 0, body: { message: String(err) } };
    }
  }

  function setStatus(id, text, isError) {
    const el = $(id);
    el.textContent = text || "";
    el.classList.toggle("error", !!isError);
  }

  function errorText(result) {
    if (result.status === 0) return "network error";
    const message = result.body && result.body.message;
    return `HTTP ${result.status}${message ? ": " + message : ""}`;
  }

  // ---- styles and layers ----------------------------------------------------------------
  function chunks(items, size) {
    const out = [];
    for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
    return out;
  }

  // ---- tile tokens -----------------------------------------------------------------------
  // One token per style group (a style covers at most MAX_LAYERS_PER_STYLE layers, and so does
  // a token). tokens.current[g] is the newest token of group g; tokens.group maps every token
  // handed out to its group, so transformRequest can swap an old one for the newest.
  const tokens = { current: [], group: new Map(), layers: [], timer: null };

  async function fetchToken(g) {
    const result = await api("/tiles/token", { json: { layers: tokens.layers[g] } });
    if (result.status !== 200 || !result.body || !result.body.token) return { result, token: null };
    tokens.current[g] = result.body.token;
    tokens.group.set(result.body.token, g);
    return { result, token: result.body.token, expiresIn: result.body.expires_in };
  }

  function scheduleRenewal(expiresIn) {
    clearTimeout(tokens.timer);
    // Renew a minute before expiry (at least 30 s from now).
    const delay = Math.max(30, (expiresIn || 3600) - 60) * 1000;
    tokens.timer = setTimeout(async () => {
      let next = null;
      for (let g = 0; g < tokens.layers.length; g++) {
        const got = await fetchToken(g);
        if (got.token) next = got.expiresIn;
      }
      scheduleRenewal(next || 60);
    }, delay);
  }

  // Same-origin URLs with a token we handed out get the group's newest token.
  function currentTokenUrl(url) {
    if (!url.startsWith(ORIGIN)) return url;
    const parsed = new URL(url);
    const g = tokens.group.get(parsed.searchParams.get("token"));
    if (g === undefined || tokens.current[g] === parsed.searchParams.get("token")) return url;
    parsed.searchParams.set("token", tokens.current[g]);
    return parsed.toString();
  }

  async function buildStyle(ids) {
    const merged = { version: 8, sources: {}, layers: [], center: DEFAULT_VIEW.center, zoom: DEFAULT_VIEW.zoom };
    const groups = chunks(ids, MAX_LAYERS_PER_STYLE);
    state.groups = groups;
    state.labelUrls = [];
    let expiresIn = null;
    for (let g = 0; g < groups.length; g++) {
      const path = `/styles/${groups[g].map(encodeURIComponent).join(",")}.json`;
      let result;
      if (tokened) {
        // The style asked with a token hands out tile URLs carrying that token, not the key.
        tokens.layers[g] = groups[g];
        const got = await fetchToken(g);
        if (!got.token) {
          setStatus("layers-status", "tile token: " + errorText(got.result), true);
          continue;
        }
        expiresIn = got.expiresIn;
        result = await api(`${path}?token=${encodeURIComponent(got.token)}`, { auth: false });
      } else {
        result = await api(path);
      }
      if (result.status !== 200) {
        setStatus("layers-status", "style: " + errorText(result), true);
        continue;
      }
      const style = result.body;
      if (g === 0 && style.center) merged.center = style.center;
      const rename = {};
      for (const [name, source] of Object.entries(style.sources)) {
        rename[name] = `${name}-${g}`;
        merged.sources[rename[name]] = source;
        if (source.type === "geojson") state.labelUrls[g] = source.data;
      }
      for (const layer of style.layers) {
        if (layer.type === "background") {
          if (g === 0) merged.layers.unshift(layer);
          continue;
        }
        merged.layers.push({ ...layer, source: rename[layer.source] || layer.source });
      }
    }
    if (expiresIn) scheduleRenewal(expiresIn);
    return merged;
  }

  function layerColour(style, id) {
    for (const layer of style.layers) {
      if (!layer.metadata || layer.metadata["geo:layer"] !== id) continue;
      const paint = layer.paint || {};
      const colour = paint["fill-color"] || paint["line-color"] || paint["circle-color"];
      if (typeof colour === "string") return colour;
    }
    return "#888";
  }

  function setVisible(id, visible) {
    const map = state.map;
    for (const layer of map.getStyle().layers) {
      if (layer.metadata && layer.metadata["geo:layer"] === id) {
        map.setLayoutProperty(layer.id, "visibility", visible ? "visible" : "none");
      }
    }
  }

  function renderLayerList(collections, style) {
    const list = $("layers");
    list.textContent = "";
    for (const c of collections) {
      const li = document.createElement("li");
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = true;
      box.dataset.layer = c.id;
      box.addEventListener("change", () => setVisible(c.id, box.checked));
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = layerColour(style, c.id);
      label.append(box, swatch, document.createTextNode(` ${c.title || c.id}`));
      li.append(label);
      list.append(li);
    }
  }

  // ---- address search --------------------------------------------------------------------
  function listFrom(body) {
    if (Array.isArray(body)) return body;
    if (!body || typeof body !== "object") return [];
    for (const name of ["features", "suggestions", "candidates", "results", "items", "addresses"]) {
      if (Array.isArray(body[name])) return body[name];
    }
    return [];
  }

  function labelOf(item) {
    if (typeof item === "string") return item;
    const p = item.properties || {};
    for (const source of [item, p, item.address || {}]) {
      for (const name of ["full_address", "fullAddress", "address", "text", "label", "name", "standard"]) {
        if (typeof source[name] === "string" && source[name]) return source[name];
      }
    }
    return JSON.stringify(item).slice(0, 80);
  }

  function positionOf(item) {
    if (!item || typeof item !== "object") return null;
    const geometry = item.geometry || item.point || item.location || (item.properties || {}).point;
    if (geometry && Array.isArray(geometry.coordinates)) return geometry.coordinates.slice(0, 2);
    if (Array.isArray(geometry) && geometry.length >= 2) return geometry.slice(0, 2);
    for (const [x, y] of [["lon", "lat"], ["lng", "lat"], ["x", "y"], ["longitude", "latitude"]]) {
      if (typeof item[x] === "number" && typeof item[y] === "number") return [item[x], item[y]];
    }
    return null;
  }

  function searchUnavailable(result) {
    state.searchAvailable = false;
    setStatus("search-status", result.status === 404
      ? "地址搜索暂不可用 (address search is not offered by this server)"
      : "地址搜索出错 · " + errorText(result), true);
  }

  let marker = null;
  function goTo(position, label) {
    const map = state.map;
    if (!marker) marker = new maplibregl.Marker({ color: "#d62728" });
    marker.setLngLat(position).addTo(map);
    map.flyTo({ center: position, zoom: Math.max(map.getZoom(), 16), duration: 800 });
    state.lastSearch = { position, label };
    setStatus("search-status", label || "");
  }

  async function geocode(text) {
    const result = await api(`/addresses/geocode?q=${encodeURIComponent(text)}`);
    if (result.status !== 200) return searchUnavailable(result);
    const found = listFrom(result.body).find((c) => positionOf(c));
    if (!found) return setStatus("search-status", `未找到 · no match for “${text}”`, true);
    goTo(positionOf(found), labelOf(found));
  }

  async function suggest(text) {
    const list = $("suggestions");
    const result = await api(`/addresses/suggest?q=${encodeURIComponent(text)}`);
    if ($("search-input").value.trim() !== text) return; // the user typed on meanwhile
    list.textContent = "";
    if (result.status !== 200) return searchUnavailable(result);
    setStatus("search-status", "");
    for (const item of listFrom(result.body).slice(0, 10)) {
      const li = document.createElement("li");
      li.textContent = labelOf(item);
      li.addEventListener("mousedown", (event) => {
        event.preventDefault();
        list.textContent = "";
        $("search-input").value = li.textContent;
        const position = positionOf(item);
        if (position) goTo(position, li.textContent);
        else geocode(li.textContent);
      });
      list.append(li);
    }
  }

  function wireSearch() {
    let timer = null;
    const input = $("search-input");
    input.addEventListener("input", () => {
      clearTimeout(timer);
      const text = input.value.trim();
      if (!text) { $("suggestions").textContent = ""; return; }
      timer = setTimeout(() => suggest(text), 200);
    });
    input.addEventListener("blur", () => setTimeout(() => { $("suggestions").textContent = ""; }, 150));
    $("search").addEventListener("submit", (event) => {
      event.preventDefault();
      clearTimeout(timer);
      $("suggestions").textContent = "";
      const text = input.value.trim();
      if (text) geocode(text);
    });
  }

  // ---- identify and reverse geocode ------------------------------------------------------
  function propertiesList(properties) {
    const dl = document.createElement("dl");
    for (const [name, value] of Object.entries(properties || {})) {
      if (value === null || typeof value === "object") continue;
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = String(value);
      dl.append(dt, dd);
    }
    return dl;
  }

  function section(title, content) {
    const wrap = document.createElement("div");
    const h = document.createElement("h3");
    h.textContent = title;
    h.style.fontSize = "13px";
    h.style.margin = "8px 0 2px";
    wrap.append(h, content);
    return wrap;
  }

  function statusLine(text, isError) {
    const p = document.createElement("p");
    p.className = "status" + (isError ? " error" : "");
    p.textContent = text;
    return p;
  }

  function identifyContent(result) {
    if (result.status === 404) return statusLine("查询暂不可用 (identify is not offered)", true);
    if (result.status !== 200) return statusLine(errorText(result), true);
    const body = result.body || {};
    const groups = Array.isArray(body.layers) ? body.layers : null;
    const wrap = document.createElement("div");
    if (groups) {
      for (const group of groups) {
        for (const feature of listFrom(group)) {
          wrap.append(section(group.title || group.id || "", propertiesList(feature.properties || feature)));
        }
      }
    } else {
      for (const feature of listFrom(body)) {
        const p = feature.properties || feature;
        wrap.append(section(feature.collection || p.collection || p.layer || feature.id || "", propertiesList(p)));
      }
    }
    if (!wrap.childNodes.length) wrap.append(statusLine("此处无要素 · nothing here"));
    return wrap;
  }

  function reverseContent(result) {
    if (result.status === 404) return statusLine("逆地理编码暂不可用 (reverse geocoding is not offered)", true);
    if (result.status !== 200) return statusLine(errorText(result), true);
    const body = result.body || {};
    const first = listFrom(body)[0] || body;
    const wrap = document.createElement("div");
    wrap.append(statusLine(labelOf(first)));
    // The areas and grid the point lies in, by name (objects in the answer).
    const areas = {};
    for (const level of ["district", "subdistrict", "community", "grid"]) {
      const area = first[level];
      if (area && typeof area === "object") areas[level] = area.name || area.code || "";
    }
    wrap.append(propertiesList({ ...(first.properties || first), ...areas }));
    return wrap;
  }

  function wireIdentify() {
    const map = state.map;
    map.on("click", async (event) => {
      const { lng, lat } = event.lngLat;
      const q = `lon=${lng.toFixed(7)}&lat=${lat.toFixed(7)}`;
      const panel = $("identify");
      panel.textContent = "";
      panel.append(statusLine(`${lng.toFixed(6)}, ${lat.toFixed(6)} …`));
      const [identify, reverse] = await Promise.all([api(`/identify?${q}`), api(`/addresses/reverse?${q}`)]);
      panel.textContent = "";
      panel.append(statusLine(`${lng.toFixed(6)}, ${lat.toFixed(6)}`));
      panel.append(section("地址 Address", reverseContent(reverse)));
      panel.append(section("要素 Features", identifyContent(identify)));
    });
  }

  // ---- start -----------------------------------------------------------------------------
  // ---- live refresh (GET /events, tiles/events.py) -------------------------------------------
  // One event stream per style group (the same layers, so the same token covers it). On a
  // change the group's tile URL gets the layers' new version sum (?v=, as the server writes it:
  // tiles.service.layers_version) and the labels are fetched again; no page reload. `ready`
  // (also after a reconnection) refreshes a group whose versions moved while it was away.
  const live = { versions: {}, streams: [], refreshes: 0 };
  state.live = live;

  function refreshGroup(g) {
    const map = state.map;
    const source = map.getSource(`geo-${g}`);
    if (!source || !source.tiles) return;
    const sum = state.groups[g].reduce((total, id) => total + (live.versions[id] || 0), 0);
    const url = source.tiles[0];
    // A string edit, not URL(): the template's {z}/{x}/{y} must stay unencoded.
    const next = url.replace(/([?&])v=\d+/, `$1v=${sum}`);
    if (next === url) return;
    source.setTiles([next]);
    const labels = map.getSource(`geo-labels-${g}`);
    if (labels && state.labelUrls[g]) {
      // Revalidated by ETag; a 304 keeps the labels as they are.
      const url = state.labelUrls[g];
      fetch(tokened ? currentTokenUrl(url) : url, { cache: "no-cache" })
        .then((r) => (r.ok ? r.json() : null))
        .then((data) => { if (data) labels.setData(data); })
        .catch(() => {});
    }
    live.refreshes += 1;
  }

  function follow(g) {
    const query = new URLSearchParams({ layers: state.groups[g].join(",") });
    if (tokened) {
      if (!tokens.current[g]) return;
      query.set("token", tokens.current[g]);
    }
    const events = new EventSource(`/events?${query}`);
    live.streams[g] = events;
    const changed = (message) => {
      const data = JSON.parse(message.data);
      if (message.type === "ready") Object.assign(live.versions, data.layers);
      else live.versions[data.layer] = data.version;
      refreshGroup(g);
    };
    events.addEventListener("ready", changed);
    events.addEventListener("version", changed);
    // EventSource reconnects by itself (to the same URL) when the stream ends, which it does
    // when its token expires; a refusal (that expired token, a full server) closes it for
    // good: open it again, with the group's newest token, a little later.
    events.addEventListener("error", () => {
      if (events.readyState === EventSource.CLOSED) setTimeout(() => follow(g), 3000);
    });
  }

  function titleFromStyle(style, id) {
    const layer = style.layers.find((l) => l.metadata && l.metadata["geo:layer"] === id);
    return layer ? layer.metadata["geo:title"] : id;
  }

  // The layers shown: ?layers=a,b from the page URL (a shared link), else every collection
  // the catalogue lists for this key.
  async function start() {
    const asked = (params.get("layers") || "").split(",").map((s) => s.trim()).filter(Boolean);
    const result = await api("/collections");
    const listed = result.status === 200 ? result.body.collections || [] : [];
    if (result.status !== 200 && !asked.length) {
      setStatus("layers-status", "图层目录不可用 · " + errorText(result), true);
    }
    state.layers = asked.length ? asked : listed.map((c) => c.id);
    const style = await buildStyle(state.layers);
    const titles = Object.fromEntries(listed.map((c) => [c.id, c.title]));
    const collections = state.layers.map((id) => ({ id, title: titles[id] || titleFromStyle(style, id) }));
    renderLayerList(collections, style);
    const map = new maplibregl.Map({
      container: "map",
      style,
      center: style.center,
      zoom: style.zoom,
      maxZoom: 22,
      attributionControl: { compact: true },
      // Tile and label URLs carry a tile token (never the key); swap in the newest one.
      transformRequest: (url) => ({ url: tokened ? currentTokenUrl(url) : url }),
    });
    state.map = map;
    map.addControl(new maplibregl.NavigationControl(), "top-right");
    map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");
    map.on("idle", () => { state.idle = true; });
    map.on("movestart", () => { state.idle = false; });
    wireSearch();
    wireIdentify();
    if (window.EventSource) {
      state.groups.forEach((_, g) => follow(g));
      // A `ready` that came before the style had loaded found no source to refresh.
      map.once("load", () => state.groups.forEach((_, g) => refreshGroup(g)));
    }
  }

  start();
})();

// ---- clusters (tiles past the feature cap, tiles/aggregate.py) -------------------------------
// The style draws them (circle by count, count label: tiles/styles.py); a click on one zooms two
// levels in around it, towards the zoom where the layer's points are shown one by one.
(function () {
  function wire(map) {
    const isCluster = (layer) => layer.id.endsWith("-cluster");
    map.on("click", (event) => {
      const ids = map.getStyle().layers.filter(isCluster).map((l) => l.id);
      const hit = ids.length ? map.queryRenderedFeatures(event.point, { layers: ids }) : [];
      if (hit.length) map.easeTo({ center: hit[0].geometry.coordinates, zoom: map.getZoom() + 2 });
    });
  }
  const wait = setInterval(() => {
    const map = window.geoViewer && window.geoViewer.map;
    if (map) { clearInterval(wait); wire(map); }
  }, 100);
})();

// ---- offline packages (.pmtiles) ---------------------------------------------------------
// An archive made by `geo tiles export` or GET /tiles/{layers}.pmtiles (tiles/pmtiles_export.py),
// opened from the person's own disk, for networks that cannot reach the service (政务内网).
// pmtiles' MapLibre protocol reads it through the File API (FileSource); the archive's metadata
// carries the live style's layers for its layers (geo:style_layers), so it is drawn as the service
// draws them. Archives made elsewhere get one plain layer per geometry kind.
(function () {
  const input = document.getElementById("offline-file");
  const status = document.getElementById("offline-status");
  const viewer = window.geoViewer;
  if (!input || !viewer || typeof pmtiles === "undefined") return;
  const protocol = new pmtiles.Protocol();
  maplibregl.addProtocol("pmtiles", protocol.tile);
  viewer.offline = [];

  function say(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", !!isError);
  }

  function plainLayers(vectorLayers) {
    const kinds = [
      ["fill", "Polygon", { "fill-color": "#555", "fill-opacity": 0.25 }],
      ["line", "LineString", { "line-color": "#555", "line-width": 1.5 }],
      ["circle", "Point", { "circle-color": "#555", "circle-radius": 4 }],
    ];
    return vectorLayers.flatMap((v) => kinds.map(([type, kind, paint]) => ({
      id: `${v.id}-${type}`, type, "source-layer": v.id, paint,
      filter: ["==", ["geometry-type"], kind],
      metadata: { "geo:layer": v.id, "geo:title": v.description || v.id },
    })));
  }

  function listEntry(name, ids) {
    const li = document.createElement("li");
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = true;
    box.dataset.offline = name;
    box.addEventListener("change", () => {
      for (const id of ids) viewer.map.setLayoutProperty(id, "visibility", box.checked ? "visible" : "none");
    });
    label.append(box, document.createTextNode(` 离线 · ${name}`));
    li.append(label);
    document.getElementById("layers").append(li);
  }

  async function open(file) {
    const map = viewer.map;
    if (!map) return say("地图尚未就绪，请稍候 · the map is not ready yet", true);
    if (!map.isStyleLoaded()) await map.once("idle");
    const archive = new pmtiles.PMTiles(new pmtiles.FileSource(file));
    let header, metadata;
    try {
      [header, metadata] = await Promise.all([archive.getHeader(), archive.getMetadata()]);
    } catch (err) {
      return say(`无法读取离线包 · cannot read ${file.name}: ${err}`, true);
    }
    protocol.add(archive);
    const source = `offline-${viewer.offline.length}`;
    map.addSource(source, {
      type: "vector", url: `pmtiles://${file.name}`, attribution: metadata.attribution || "",
    });
    const ids = [];
    for (const layer of metadata["geo:style_layers"] || plainLayers(metadata.vector_layers || [])) {
      ids.push(`${source}-${layer.id}`);
      map.addLayer({ ...layer, id: ids[ids.length - 1], source });
    }
    listEntry(file.name, ids);
    viewer.offline.push({ name: file.name, source, layers: ids });
    map.fitBounds([[header.minLon, header.minLat], [header.maxLon, header.maxLat]],
      { padding: 20, maxZoom: header.maxZoom, duration: 0 });
    say(`已打开 ${file.name}（${header.minZoom}-${header.maxZoom} 级）· opened`);
  }

  input.addEventListener("change", () => {
    for (const file of input.files) open(file);
  });
})();
