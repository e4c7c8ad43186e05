/* Shared by every console page (sign-in, password, my layers here; layer.js and catalogue.js
   add theirs): every read and write is a call to the service's own JSON API with the person's
   session cookie (and the CSRF token for writes), so roles and grants apply as for any client.
   Words come from the page's message catalogue (console/i18n.py). */
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

  const pages = { login: initLogin, password: initPassword, layers: initLayers };
  window.geoConsole = {
    M, $, api, fmt, cell, day, list, enc, errorText, keepForms, restoreForms, body, pages,
  };
  // Deferred scripts have all run by DOMContentLoaded: the other pages' files registered theirs.
  document.addEventListener("DOMContentLoaded", () => {
    if (page === "layers") restoreForms();
    if (pages[page]) pages[page]();
  });
})();
