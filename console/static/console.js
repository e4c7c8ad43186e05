/* The console's behaviour: every read and write is a call to the service's own JSON API with the
   person's session cookie (and the CSRF token for writes), so roles and grants apply as for any
   client. Words come from the page's message catalogue (console/i18n.py). */
(() => {
  "use strict";
  const M = JSON.parse(document.getElementById("messages").textContent);
  const body = document.body;
  const csrf = body.dataset.csrf;
  const page = body.dataset.page;
  const $ = (id) => document.getElementById(id);
  const fmt = (key, values = {}) =>
    (M[key] || key).replace(/\{(\w+)\}/g, (_, k) => (k in values ? values[k] : ""));
  const KEPT = "console-form:" + location.pathname;

  function errorText(err) {
    const b = (err && err.body) || {};
    if (b.code === "InvalidFeatures") return fmt("err_InvalidFeatures", b.details || {});
    if (b.code && M["err_" + b.code]) return M["err_" + b.code];
    if (err && err.status === 403) return M.err_Forbidden;
    if (err && err.status === 404) return M.err_NotFound;
    if (err && err.status === 0) return M.err_network;
    return fmt("err_other", { message: b.message || (err && err.message) || "" });
  }

  /* What the person typed survives a session that ended: kept here, put back after sign-in. */
  function keepForms() {
    const kept = {};
    document.querySelectorAll("form[data-keep]").forEach((form) => {
      for (const el of form.elements) {
        if (el.name && el.type !== "file" && el.type !== "password" && el.type !== "hidden") {
          kept[form.id + "/" + el.name] = el.value;
        }
      }
    });
    sessionStorage.setItem(KEPT, JSON.stringify(kept));
  }
  function restoreForms() {
    const raw = sessionStorage.getItem(KEPT);
    if (!raw) return;
    sessionStorage.removeItem(KEPT);
    for (const [key, value] of Object.entries(JSON.parse(raw))) {
      const [formId, name] = key.split("/");
      const form = $(formId);
      if (form && form.elements[name]) form.elements[name].value = value;
    }
  }
  function signInAgain() {
    keepForms();
    const here = location.pathname + location.search;
    location.href = "/console/login?expired=1&next=" + encodeURIComponent(here);
  }
  function handleAuth(status, data) {
    if (status === 401) { signInAgain(); return true; }
    if (status === 403 && data && data.code === "PasswordChangeRequired") {
      location.href = "/console/password?next=" + encodeURIComponent(location.pathname);
      return true;
    }
    return false;
  }

  async function api(method, url, payload) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    const init = { method, headers, credentials: "same-origin" };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (e) {
      throw Object.assign(new Error(M.err_network), { status: 0, body: {} });
    }
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch (e) { data = null; }
    }
    if (!response.ok) {
      if (page !== "login" && page !== "password" && handleAuth(response.status, data)) {
        return new Promise(() => {});  // the page is going away
      }
      throw Object.assign(new Error((data && data.message) || String(response.status)), {
        status: response.status, body: data || {},
      });
    }
    return data;
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    row.appendChild(td);
    return td;
  }
  const day = (iso) => (iso ? new Date(iso).toLocaleString(document.documentElement.lang) : "");
  const list = (text) => text.split(/[,，]/).map((s) => s.trim()).filter(Boolean);
  const enc = encodeURIComponent;

  /* ---------------- sign-in and password ---------------- */
  function initLogin() {
    const form = $("login-form");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      $("login-error").textContent = "";
      try {
        const me = await api("POST", "/auth/login", {
          username: form.elements.username.value, password: form.elements.password.value,
        });
        const next = form.dataset.next;
        location.href = me.must_change_password
          ? "/console/password?next=" + enc(next) : next;
      } catch (err) {
        $("login-error").textContent = errorText(err);
      }
    });
  }
  function initPassword() {
    const form = $("password-form");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      $("password-error").textContent = "";
      try {
        await api("POST", "/auth/password", {
          current_password: form.elements.current_password.value,
          new_password: form.elements.new_password.value,
        });
        location.href = form.dataset.next;
      } catch (err) {
        if (err.status === 401) { location.href = "/console/login"; return; }
        $("password-error").textContent = errorText(err);
      }
    });
  }

  /* ---------------- my layers ---------------- */
  async function loadLayers() {
    const dept = body.dataset.department;
    const found = await api("GET",
      "/catalogue/collections/layers/items?limit=100&department=" + enc(dept));
    const tbody = $("layers-body");
    tbody.replaceChildren();
    $("layers-empty").hidden = found.features.length > 0;
    for (const record of found.features) {
      const p = record.properties;
      const tr = document.createElement("tr");
      const a = document.createElement("a");
      a.href = "/console/layers/" + enc(record.id);
      a.textContent = p.title || record.id;
      cell(tr, "").appendChild(a);
      cell(tr, record.id);
      const count = cell(tr, "…");
      cell(tr, day(p.updated));
      cell(tr, M["sharing_" + p.sharingType] || p.sharingType);
      tr.dataset.layer = record.id;
      tbody.appendChild(tr);
      api("GET", "/collections/" + enc(record.id) + "/items?limit=1")
        .then((items) => { count.textContent = items.numberMatched ?? ""; })
        .catch(() => { count.textContent = "—"; });
    }
  }

  function showUploadError(err) {
    const box = $("upload-error");
    box.replaceChildren();
    const p = document.createElement("p");
    p.textContent = errorText(err);
    box.appendChild(p);
    const reported = err.body && err.body.details && err.body.details.errors;
    if (err.body && err.body.code === "InvalidFeatures" && Array.isArray(reported)) {
      const ul = document.createElement("ul");
      ul.id = "feature-errors";
      for (const item of reported) {
        const li = document.createElement("li");
        // The API counts features from 0; people count from 1.
        li.textContent = fmt("feature_error", { row: item.index + 1, reason: item.reason });
        ul.appendChild(li);
      }
      box.appendChild(ul);
    }
  }

  function initLayers() {
    loadLayers().catch((err) => { $("upload-error").textContent = errorText(err); });
    const form = $("upload-form");
    const submit = $("upload-submit");
    const progress = $("upload-progress");
    const status = $("upload-status");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (submit.disabled) return;  // a second click while the first is on its way
      $("upload-error").replaceChildren();
      status.textContent = "";
      const file = form.elements.file.files[0];
      if (!file) { $("upload-error").textContent = M.no_file; return; }
      if (file.size === 0) { $("upload-error").textContent = M.empty_file; return; }
      const mode = form.elements.mode.value;
      const params = new URLSearchParams({ mode, crs: form.elements.crs.value });
      if (mode === "upsert" && form.elements.key_property.value) {
        params.set("key_property", form.elements.key_property.value);
      }
      const data = new FormData();
      data.append("file", file, file.name);
      if (mode === "create" && form.elements.title.value) {
        data.append("metadata", JSON.stringify({ title: form.elements.title.value }));
      }
      const id = form.elements.id.value.trim();
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/collections/" + enc(id) + "/upload?" + params);
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) progress.value = Math.round((e.loaded / e.total) * 100);
      };
      xhr.upload.onload = () => {
        status.textContent = M.processing;
        progress.removeAttribute("value");  // indeterminate while the server reads the file
      };
      xhr.onloadend = () => {
        submit.disabled = false;
        progress.hidden = true;
        status.textContent = "";
        let answer = null;
        try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = null; }
        if (xhr.status === 200 || xhr.status === 201) {
          status.textContent = fmt("upload_done", { n: answer.features });
          loadLayers().catch(() => {});
          return;
        }
        if (handleAuth(xhr.status, answer)) return;
        showUploadError({ status: xhr.status, body: answer || {}, message: xhr.statusText });
      };
      submit.disabled = true;
      progress.hidden = false;
      progress.value = 0;
      status.textContent = M.uploading;
      xhr.send(data);
    });
  }

  /* ---------------- a layer ---------------- */
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

    async function loadGrants() {
      const found = await api("GET", base + "/grants");
      const tbody = $("grants-body");
      tbody.replaceChildren();
      // The API lists revoked and expired grants too (their history); the table shows those in force.
      const current = found.grants.filter((g) => g.active);
      $("grants-empty").hidden = current.length > 0;
      for (const g of current) {
        const tr = document.createElement("tr");
        cell(tr, g.grantee || M.everyone);
        cell(tr, M["level_" + g.level] || g.level);
        cell(tr, g.area_code || "");
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
      });
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
      loadGrants().catch((err) => { $("grant-error").textContent = errorText(err); });
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
    $("download-crs").addEventListener("change", () => {
      document.querySelectorAll("#downloads a").forEach((a) => {
        a.href = base + "/export?f=" + a.dataset.format + "&crs=" + enc($("download-crs").value);
      });
    });
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
    $("grant-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = event.target;
      $("grant-error").textContent = "";
      const grant = { grantee: form.elements.grantee.value.trim() || null,
        level: form.elements.level.value };
      if (form.elements.area_code.value.trim()) grant.area_code = form.elements.area_code.value.trim();
      if (form.elements.attributes.value.trim()) grant.attributes = list(form.elements.attributes.value);
      if (form.elements.expires_at.value) grant.expires_at = form.elements.expires_at.value + "T23:59:59+08:00";
      try {
        await api("POST", base + "/grants", grant);
        form.reset();
        await loadGrants();
      } catch (err) {
        $("grant-error").textContent = errorText(err);
      }
    });
  }

  /* ---------------- catalogue and access requests ---------------- */
  function initCatalogue() {
    const dept = body.dataset.department;
    let searches = 0;
    async function search() {
      const q = $("q").value.trim();
      const mine = ++searches;
      const found = await api("GET", "/catalogue/collections/layers/items?limit=50"
        + (q ? "&q=" + enc(q) : ""));
      if (mine !== searches) return;  // a later search is on its way: its answer counts
      const tbody = $("results-body");
      tbody.replaceChildren();
      $("results-empty").hidden = found.features.length > 0;
      for (const record of found.features) {
        const p = record.properties;
        const tr = document.createElement("tr");
        tr.dataset.layer = record.id;
        cell(tr, p.title || record.id);
        cell(tr, (p.provider && p.provider.name) || "");
        cell(tr, M["sharing_" + p.sharingType] || p.sharingType);
        const access = cell(tr, "");
        const ask = (record.links || []).some((l) => l.rel === "request-access");
        if (ask && p.provider.code !== dept) {
          const button = document.createElement("button");
          button.type = "button";
          button.textContent = M.request_access;
          button.setAttribute("aria-label", M.request_access + "：" + (p.title || record.id));
          button.addEventListener("click", () => {
            $("request-form").hidden = false;
            $("request-collection").value = record.id;
            $("request-heading").textContent = M.request_access + "：" + (p.title || record.id);
            $("request-purpose").focus();
          });
          access.appendChild(button);
        } else {
          const a = document.createElement("a");
          a.href = "/console/layers/" + enc(record.id);
          a.textContent = M.access_granted;
          access.appendChild(a);
        }
        tbody.appendChild(tr);
      }
    }
    async function loadRequests() {
      const incoming = await api("GET", "/access-requests?direction=incoming");
      const inBody = $("incoming-body");
      inBody.replaceChildren();
      for (const r of incoming.requests) {
        const tr = document.createElement("tr");
        tr.dataset.request = r.id;
        cell(tr, r.collection);
        cell(tr, r.requester);
        cell(tr, r.purpose);
        cell(tr, M["level_" + r.level] || r.level);
        cell(tr, M["status_" + r.status] || r.status);
        const actions = cell(tr, "");
        // Deciding is a department administrator's (the API answers 403 to others).
        if (r.status === "pending" && body.dataset.role === "admin") {
          for (const [verb, label] of [["approve", M.approve], ["reject", M.reject]]) {
            const button = document.createElement("button");
            button.type = "button";
            button.className = verb;
            button.textContent = label;
            button.addEventListener("click", async () => {
              let payload = {};
              if (verb === "reject") {
                const reason = window.prompt(M.reason);
                if (!reason) return;
                payload = { reason };
              }
              try {
                await api("POST", "/access-requests/" + r.id + "/" + verb, payload);
                await loadRequests();
              } catch (err) {
                $("incoming-error").textContent = errorText(err);
              }
            });
            actions.appendChild(button);
          }
        }
        inBody.appendChild(tr);
      }
      const outgoing = await api("GET", "/access-requests?direction=outgoing");
      const outBody = $("outgoing-body");
      outBody.replaceChildren();
      for (const r of outgoing.requests) {
        const tr = document.createElement("tr");
        tr.dataset.request = r.id;
        cell(tr, r.collection);
        cell(tr, r.purpose);
        cell(tr, M["level_" + r.level] || r.level);
        cell(tr, M["status_" + r.status] || r.status);
        outBody.appendChild(tr);
      }
    }
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      search().catch((err) => { $("results-empty").hidden = false; $("results-empty").textContent = errorText(err); });
    });
    $("request-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = event.target;
      $("request-error").textContent = "";
      try {
        await api("POST", "/access-requests", {
          collection: form.elements.collection.value,
          purpose: form.elements.purpose.value,
          level: form.elements.level.value,
          duration_days: Number(form.elements.duration_days.value),
        });
        $("request-status").textContent = M.request_sent;
        await loadRequests();
      } catch (err) {
        $("request-error").textContent = errorText(err);
      }
    });
    restoreForms();
    search().catch(() => {});
    loadRequests().catch((err) => { $("incoming-error").textContent = errorText(err); });
  }

  const pages = { login: initLogin, password: initPassword, layers: initLayers,
    layer: initLayer, catalogue: initCatalogue };
  if (page === "layers") restoreForms();
  if (pages[page]) pages[page]();
})();
