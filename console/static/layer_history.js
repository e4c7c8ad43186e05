/* The layer page's edit history: GET /collections/{id}/changes a page at a time (uploads with
   their mode and counts, feature writes, catalogue edits; the layer's department sees all, a
   grantee its own), each feature's versions opened in place from .../items/{fid}/history. */
(() => {
  "use strict";
  const PAGE = 20;

  function initHistory() {
    const { M, $, api, fmt, cell, day, enc, errorText } = window.geoConsole;
    const id = $("layer-title").dataset.layer;
    const base = "/collections/" + enc(id);
    let offset = 0;

    function who(change) {
      const dept = change.department || "";
      return change.account ? change.account + " · " + dept : dept;
    }

    function uploadText(details) {
      const parts = [fmt("upload_summary", {
        mode: M["mode_" + details.mode] || details.mode, features: details.features,
      })];
      for (const key of ["inserted", "updated", "archived"]) {
        if (details[key] != null) parts.push(fmt("upload_" + key, { n: details[key] }));
      }
      return parts.join(" · ");
    }

    function versionsOf(fid) {
      const box = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = fmt("feature_versions", { fid });
      box.appendChild(summary);
      const ul = document.createElement("ul");
      box.appendChild(ul);
      box.addEventListener("toggle", async () => {
        if (!box.open || box.dataset.loaded) return;
        box.dataset.loaded = "1";
        try {
          const found = await api("GET", base + "/items/" + enc(fid) + "/history");
          for (const v of found.versions) {
            const li = document.createElement("li");
            const tail = v.current ? M.version_current : M["version_" + v.superseded_by] || "";
            li.textContent = fmt("version_line", {
              version: v.version, who: v.updated_by || "", when: day(v.updated_at),
            }) + tail;
            ul.appendChild(li);
          }
          if (!found.versions.length) ul.textContent = M.versions_none;
        } catch (err) {
          ul.textContent = errorText(err);
        }
      });
      return box;
    }

    function describe(td, change) {
      const details = change.details || {};
      if (change.action === "layer.upload") {
        td.textContent = uploadText(details);
      } else if (change.feature !== null) {
        td.appendChild(versionsOf(change.feature));
      } else if (Array.isArray(details.changed)) {
        td.textContent = fmt("changed_fields", { fields: details.changed.join(", ") });
      } else {
        td.textContent = Object.keys(details).join(", ");
      }
    }

    async function load() {
      $("history-error").textContent = "";
      try {
        const page = await api("GET", base + "/changes?limit=" + PAGE + "&offset=" + offset);
        $("history-own").hidden = page.scope === "all";
        const tbody = $("history-body");
        tbody.replaceChildren();
        for (const change of page.changes) {
          const tr = document.createElement("tr");
          tr.dataset.action = change.action;
          cell(tr, day(change.at));
          cell(tr, M["act_" + change.action] || change.action);
          cell(tr, who(change));
          describe(cell(tr, ""), change);
          tbody.appendChild(tr);
        }
        const n = page.changes.length;
        $("history-empty").hidden = n > 0 || offset > 0;
        $("history-range").textContent = n ? fmt("history_range", { from: offset + 1, to: offset + n }) : "";
        $("history-prev").disabled = offset === 0;
        $("history-next").disabled = !page.more;
      } catch (err) {
        $("history-error").textContent = errorText(err);
      }
    }

    $("history-prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); load(); });
    $("history-next").addEventListener("click", () => { offset += PAGE; load(); });
    load();
  }

  // Loaded before console.js: by DOMContentLoaded every deferred script has run.
  document.addEventListener("DOMContentLoaded", () => {
    if (document.body.dataset.page === "layer" && window.geoConsole) initHistory();
  });
})();
