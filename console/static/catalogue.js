/* The catalogue: search, asking for access, one's own requests and those to decide (see
   console.js). */
(() => {
  "use strict";
  const { M, $, api, cell, enc, errorText, restoreForms, body } = window.geoConsole;
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

  window.geoConsole.pages.catalogue = initCatalogue;
})();
