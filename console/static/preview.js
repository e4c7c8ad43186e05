/* The upload forms' preview before commit (my layers: a new layer, or append/replace/upsert by
   id; a layer's page: append/replace/upsert into it). Choosing a file sends it to
   POST /collections/{id}/upload/preview, which reads and checks it as the upload would and
   writes nothing: its bar shows the upload, then the processing. The answer is shown as the
   first features on a map where they will land, the inferred schema and the per-feature error
   report. 提交 sends the same file with the same parameters to the upload itself; 取消 forgets
   the preview (nothing was written). The form's values are taken when the preview is made, so
   the commit sends what was previewed; changing the form afterwards asks for a new preview. */
(() => {
  "use strict";
  const { M, $, fmt, enc, errorText, handleAuth, body } = window.geoConsole;
  const csrf = body.dataset.csrf;

  /* One multipart POST with its two bars: the upload's bytes (XMLHttpRequest upload progress
     events), then the server's processing, asked for as NDJSON: a line {"read": n} after each
     batch the server has read and checked, then the outcome {"status", "result" | "error"}
     (an upload's once committed). Resolves with {status, data} as a JSON answer has them. */
  function send(url, request, bars) {
    return new Promise((resolve) => {
      const form = new FormData();
      form.append("file", request.file, request.file.name);
      if (request.metadata) form.append("metadata", JSON.stringify(request.metadata));
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url + "?" + request.params);
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("Accept", "application/x-ndjson");
      const lines = () => (xhr.getResponseHeader("Content-Type") || "").includes("ndjson")
        ? xhr.responseText.split("\n").filter(Boolean).map((line) => JSON.parse(line)) : null;
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) bars.upload.value = Math.round((e.loaded / e.total) * 100);
      };
      xhr.upload.onload = () => {
        bars.upload.value = 100;
        bars.status.textContent = M.processing;
        bars.process.removeAttribute("value");  // how many features a file holds is unknown
      };
      xhr.onprogress = () => {
        const read = (lines() || []).filter((line) => "read" in line).pop();
        if (!read) return;
        bars.status.textContent = fmt("processed_n", { n: read.read });
        bars.process.setAttribute("aria-valuetext", bars.status.textContent);
      };
      xhr.onloadend = () => {
        bars.process.value = 100;
        let status = xhr.status;
        let data = null;
        try {
          const streamed = status === 200 && lines();
          if (streamed) {
            const outcome = streamed.pop();
            status = outcome.status;
            data = outcome.result || outcome.error;
          } else {
            data = JSON.parse(xhr.responseText);
          }
        } catch (e) { data = null; }
        resolve({ status, data });
      };
      bars.box.hidden = false;
      bars.upload.value = 0;
      bars.process.value = 0;
      bars.process.removeAttribute("aria-valuetext");
      bars.status.textContent = M.uploading;
      xhr.send(form);
    });
  }

  function showError(status, data) {
    const box = $("upload-error");
    box.replaceChildren();
    const p = document.createElement("p");
    p.textContent = errorText({ status, body: data || {} });
    box.appendChild(p);
    const reported = data && data.details && data.details.errors;
    if (data && data.code === "InvalidFeatures" && Array.isArray(reported)) {
      box.appendChild(errorList(reported, "feature-errors"));
    }
  }

  /* The API writes its reasons in English; the usual ones are told in the page's language
     (the API's own words stay in the item's title), anything else as the API wrote it. */
  const REASONS = [
    [/^property '(.+)' is not in the layer schema \((.*)\)$/, "why_not_in_schema"],
    [/^property '(.+)': expected (?:an? )?(\w+), got (.+)$/, "why_wrong_type", 2],
    [/^property '(.+)' is required$/, "why_required"],
    [/^feature has no geometry$/, "why_no_geometry"],
    [/^geometry is empty$/, "why_empty"],
    [/^coordinates outside the city extent .*latitude and longitude look swapped$/, "why_swapped"],
    [/^coordinates outside the city extent .*wrong crs\? the file was read as (.+)$/,
      "why_wrong_crs"],
    [/^invalid geometry: (.+) \(make_valid=true repairs\)$/, "why_invalid"],
    [/^geometry type (\w+) does not fit the layer's type (\w+)$/, "why_type"],
    [/^mixed geometry types: (\w+) in a layer of (\w+)s /, "why_mixed"],
    [/^(.+)\/(.+) must be numbers, got (.*), (.*)$/, "why_lonlat"],
    [/^row has (\d+) fields, the header (\d+)$/, "why_fields"],
    [/^address (.+) not found in the address library$/, "why_no_address"],
    [/^address (.+) not matched confidently \(best: (.+), level (\w+), score ([\d.]+)\)/,
      "why_weak_address"],
  ];
  function reasonText(reason) {
    for (const [pattern, key, typeAt] of REASONS) {
      const m = reason.match(pattern);
      if (!m) continue;
      const values = { ...m };  // {1}, {2}... in the words are the matched groups
      if (typeAt) values[typeAt] = M["type_" + m[typeAt]] || m[typeAt];
      return fmt(key, values);
    }
    return reason;
  }

  function errorList(reported, id) {
    const ul = document.createElement("ul");
    ul.id = id;
    for (const item of reported) {
      const li = document.createElement("li");
      // The API counts features from 0; people count from 1.
      li.textContent = fmt("feature_error",
        { row: item.index + 1, reason: reasonText(item.reason) });
      li.title = item.reason;  // the API's own words, for a report to the service's operators
      ul.appendChild(li);
    }
    return ul;
  }

  let map = null;
  function drawMap(answer) {
    window.previewMapReady = null;
    if (!window.maplibregl) return;
    const data = answer.first_features;
    const fit = () => {
      const box = answer.bbox;
      if (box) {
        map.fitBounds([[box[0], box[1]], [box[2], box[3]]],
          { padding: 30, maxZoom: 15, duration: 0 });
      }
      map.once("idle", () => { window.previewMapReady = data.features.length; });
    };
    if (map) {
      map.getSource("preview").setData(data);
      fit();
      return;
    }
    map = new maplibregl.Map({
      container: "preview-map",
      style: { version: 8, sources: {}, layers: [
        { id: "bg", type: "background", paint: { "background-color": "#f6f4ee" } }] },
      center: [117.2, 39.13], zoom: 8, attributionControl: false,
    });
    window.previewMap = map;
    map.on("load", () => {
      map.addSource("preview", { type: "geojson", data });
      map.addLayer({ id: "fill", type: "fill", source: "preview",
        filter: ["==", ["geometry-type"], "Polygon"],
        paint: { "fill-color": "#4a3f8c", "fill-opacity": 0.3 } });
      map.addLayer({ id: "line", type: "line", source: "preview",
        filter: ["==", ["geometry-type"], "LineString"], paint: { "line-color": "#4a3f8c" } });
      map.addLayer({ id: "points", type: "circle", source: "preview",
        filter: ["==", ["geometry-type"], "Point"],
        paint: { "circle-color": "#c0392b", "circle-radius": 5 } });
      fit();
    });
  }

  function showPreview(answer) {
    $("preview").hidden = false;
    const invalid = answer.invalid;
    $("preview-summary").textContent = fmt("preview_summary", {
      total: answer.total, features: answer.features, invalid: invalid.count,
      type: answer.geometry_type,
    });
    const verdict = $("preview-verdict");
    const lines = [answer.committable
      ? fmt("preview_ok", { n: answer.features })
      : fmt("preview_blocked", { count: invalid.count })];
    if (answer.committable && answer.archived != null) lines.push(fmt("preview_replace", answer));
    if (answer.committable && answer.updated != null) lines.push(fmt("preview_upsert", answer));
    if (answer.renamed) {
      lines.push(fmt("preview_renamed", { list: Object.entries(answer.renamed)
        .map(([from, to]) => from + " → " + to).join("，") }));
    }
    verdict.textContent = lines.join(" ");
    verdict.className = answer.committable ? "ok" : "error";
    $("h-preview-map").textContent = fmt("preview_map",
      { n: answer.first_features.features.length });
    const schema = $("preview-schema-body");
    schema.replaceChildren();
    for (const p of answer.properties) {
      const tr = document.createElement("tr");
      for (const text of [p.name, M["type_" + p.type] || p.type]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      schema.appendChild(tr);
    }
    const errors = $("preview-errors");
    errors.replaceChildren();
    if (invalid.count) {
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = fmt("err_InvalidFeatures", invalid);
      errors.append(p, errorList(invalid.errors, "preview-error-list"));
    } else {
      const p = document.createElement("p");
      p.textContent = M.preview_no_errors;
      errors.appendChild(p);
    }
    $("preview-commit").disabled = !answer.committable;
    drawMap(answer);
  }

  function initPreview(form) {
    const fixed = form.dataset.layer;  // a layer's page: its own layer
    const bars = { box: $("upload-bars"), upload: $("upload-progress"),
      process: $("process-progress"), status: $("upload-status") };
    const submit = $("upload-submit");
    const commit = $("preview-commit");
    let previewed = null;  // the request the preview on show was made from
    let busy = false;

    function request() {
      const file = form.elements.file.files[0];
      if (!file) return { problem: M.no_file };
      if (file.size === 0) return { problem: M.empty_file };
      const id = fixed || form.elements.id.value.trim();
      if (!id) return { problem: M.preview_need_id };
      const mode = form.elements.mode.value;
      const params = new URLSearchParams({ mode, crs: form.elements.crs.value });
      if (mode === "upsert" && form.elements.key_property.value) {
        params.set("key_property", form.elements.key_property.value);
      }
      const title = form.elements.title && form.elements.title.value;
      const metadata = mode === "create" && title ? { title } : null;
      return { id, file, params, metadata };
    }

    function forget(message) {
      previewed = null;
      $("preview").hidden = true;
      bars.status.textContent = message || "";
    }

    async function preview() {
      if (busy) return;  // a second click while the first is on its way
      $("upload-error").replaceChildren();
      forget();
      const asked = request();
      if (asked.problem) { $("upload-error").textContent = asked.problem; return; }
      busy = true;
      submit.disabled = true;
      const url = "/collections/" + enc(asked.id) + "/upload/preview";
      const { status, data } = await send(url, asked, bars);
      busy = false;
      submit.disabled = false;
      bars.box.hidden = true;
      if (status === 200) {
        previewed = asked;
        bars.status.textContent = M.preview_ready;
        showPreview(data);
        return;
      }
      bars.status.textContent = "";
      if (!handleAuth(status, data)) showError(status, data);
    }

    async function commitPreviewed() {
      if (busy || !previewed) return;  // a double click commits once
      const asked = previewed;
      busy = true;
      commit.disabled = true;
      submit.disabled = true;
      $("upload-error").replaceChildren();
      const url = "/collections/" + enc(asked.id) + "/upload";
      const { status, data } = await send(url, asked, bars);
      busy = false;
      submit.disabled = false;
      bars.box.hidden = true;
      if (status === 200 || status === 201) {
        forget(fmt("upload_done", { n: data.features }));
        document.dispatchEvent(new CustomEvent("layer-uploaded", { detail: data }));
        return;
      }
      commit.disabled = false;
      bars.status.textContent = "";
      if (!handleAuth(status, data)) showError(status, data);
    }

    form.addEventListener("submit", (event) => { event.preventDefault(); preview(); });
    form.elements.file.addEventListener("change", () => {
      if (request().problem !== M.preview_need_id) preview();
      else $("upload-error").textContent = M.preview_need_id;
    });
    // A preview holds for the values it was made from (a change event alone says little: a
    // text field sends one when it loses focus, after the file was chosen).
    const stale = (event) => {
      if (event.target === form.elements.file || !previewed) return;
      const now = request();
      const same = now.id === previewed.id && now.file === previewed.file
        && String(now.params) === String(previewed.params)
        && JSON.stringify(now.metadata) === JSON.stringify(previewed.metadata);
      if (!same) forget(M.preview_stale);
    };
    form.addEventListener("change", stale);
    form.addEventListener("input", stale);
    commit.addEventListener("click", commitPreviewed);
    $("preview-cancel").addEventListener("click", () => forget(M.preview_cancelled));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = $("upload-form");
    if (form) initPreview(form);
  });
})();
