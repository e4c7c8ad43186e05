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

  /* The upload form is preview.js's; a committed upload refreshes the list. */
  function initLayers() {
    loadLayers().catch((err) => { $("upload-error").textContent = errorText(err); });
    document.addEventListener("layer-uploaded", () => { loadLayers().catch(() => {}); });
  }

  const pages = { login: initLogin, password: initPassword, layers: initLayers };
  window.geoConsole = {
    M, $, api, fmt, cell, day, list, enc, errorText, keepForms, restoreForms, handleAuth, body,
    pages,
  };
  // Deferred scripts have all run by DOMContentLoaded: the other pages' files registered theirs.
  document.addEventListener("DOMContentLoaded", () => {
    if (page === "layers") restoreForms();
    if (pages[page]) pages[page]();
  });
})();
