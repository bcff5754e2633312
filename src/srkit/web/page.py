"""The browser page of ``srkit serve``: one self-contained HTML document (inline CSS and JavaScript, no
external resources, since the server may run without internet access).

The page reads ``/api/models``, lets the user pick a model and a scale (a list for fixed-scale models, any
number in the range for continuous-scale ones such as LIIF), takes an image from the file picker, a drop or
the clipboard, posts it to ``/api/upscale`` as ``multipart/form-data`` (field ``file``), and shows the result
next to the input with a before/after slider over MATLAB bicubic (a second request to the built-in ``bicubic``
model) or over the input scaled by the browser (smooth or pixelated), the time the server took, the sizes, and
a download link. Error answers (``{"error": ...}``) are
shown as they come.

It is kept as a Python string so that it ships inside the package without package-data configuration.
"""

from __future__ import annotations

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>srkit: super-resolution</title>
<style>
:root { --bg: #f6f7f9; --fg: #1c1f24; --muted: #5d6673; --card: #fff; --line: #d9dde3; --accent: #2f6fde;
        --bad: #b3261e; --badbg: #fdecea; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #15171a; --fg: #e6e8eb; --muted: #9aa3ad; --card: #1e2125; --line: #343a41; --accent: #6d9eff;
          --bad: #ffb4ab; --badbg: #3b1d1a; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg);
       color: var(--fg); }
header { padding: 14px 22px; border-bottom: 1px solid var(--line); display: flex; gap: 16px; align-items: baseline; }
header h1 { font-size: 20px; margin: 0; }
header span { color: var(--muted); font-size: 13px; }
main { max-width: 1200px; margin: 0 auto; padding: 18px 22px 40px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px; margin-bottom: 16px; }
form { display: grid; grid-template-columns: minmax(220px, 1fr) minmax(180px, 260px); gap: 14px 18px; }
label { display: block; font-weight: 600; font-size: 13px; margin-bottom: 4px; }
select, input[type=number] { width: 100%; padding: 7px 8px; font: inherit; color: inherit; background: var(--bg);
       border: 1px solid var(--line); border-radius: 6px; }
.hint { color: var(--muted); font-size: 13px; margin-top: 4px; min-height: 1.2em; }
#drop { grid-column: 1 / -1; border: 2px dashed var(--line); border-radius: 8px; padding: 22px; text-align: center;
        cursor: pointer; color: var(--muted); }
#drop.over { border-color: var(--accent); color: var(--fg); }
#drop strong { color: var(--fg); }
#file { display: none; }
.row { grid-column: 1 / -1; display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
button { font: inherit; font-weight: 600; padding: 8px 18px; border-radius: 6px; border: 0; background: var(--accent);
         color: #fff; cursor: pointer; }
button:disabled { opacity: .5; cursor: default; }
#status { color: var(--muted); }
#error { display: none; background: var(--badbg); color: var(--bad); border: 1px solid var(--bad); border-radius: 6px;
         padding: 10px 12px; margin-bottom: 16px; white-space: pre-wrap; }
#result { display: none; }
.stats { display: flex; gap: 18px; flex-wrap: wrap; margin-bottom: 10px; }
.stats div { font-size: 13px; color: var(--muted); }
.stats b { color: var(--fg); font-size: 15px; display: block; }
.tools { display: flex; gap: 14px; align-items: center; flex-wrap: wrap; margin-bottom: 10px; font-size: 13px; }
.tools select { width: auto; padding: 3px 6px; }
a.dl { font-weight: 600; color: var(--accent); }
#viewer { overflow: auto; max-height: 75vh; border: 1px solid var(--line); border-radius: 6px; background:
          repeating-conic-gradient(#8881 0 25%, transparent 0 50%) 0 0 / 16px 16px; }
#stage { position: relative; margin: 0 auto; user-select: none; touch-action: none; cursor: ew-resize; }
#stage img { position: absolute; inset: 0; width: 100%; height: 100%; display: block; }
#before { clip-path: inset(0 50% 0 0); }
#before.pixelated { image-rendering: pixelated; }
#handle { position: absolute; top: 0; bottom: 0; width: 2px; margin-left: -1px; background: #fff;
          box-shadow: 0 0 0 1px #0006; left: 50%; pointer-events: none; }
.tag { position: absolute; top: 8px; padding: 2px 7px; font-size: 12px; border-radius: 4px; background: #000a;
       color: #fff; pointer-events: none; }
#tagl { left: 8px; } #tagr { right: 8px; }
#split { width: 100%; margin: 8px 0 0; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; margin-top: 14px; }
.pair figure { margin: 0; }
.pair img { max-width: 100%; max-height: 300px; display: block; border: 1px solid var(--line); }
.pair figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; }
footer { color: var(--muted); font-size: 12px; }
</style>
</head>
<body>
<header><h1>srkit</h1><span>super-resolution on this machine: images are processed locally, nothing leaves it</span></header>
<main>
<div id="error" role="alert"></div>
<div class="card">
<form id="form">
  <div>
    <label for="model">Model</label>
    <select id="model" name="model" required></select>
    <div class="hint" id="modelinfo">loading the model list&hellip;</div>
  </div>
  <div>
    <label for="scale">Scale</label>
    <span id="scalebox"><select id="scale" name="scale"></select></span>
    <div class="hint" id="scaleinfo"></div>
  </div>
  <div id="drop" tabindex="0">
    <input type="file" id="file" name="file" accept="image/*">
    <strong>Drop an image here</strong>, click to choose one, or paste it (Ctrl+V)
    <div class="hint" id="fileinfo"></div>
  </div>
  <div class="row">
    <button type="submit" id="go" disabled>Upscale</button>
    <span id="status"></span>
  </div>
</form>
</div>
<div class="card" id="result">
  <div class="stats">
    <div><b id="r-model"></b>model</div>
    <div><b id="r-scale"></b>scale</div>
    <div><b id="r-size"></b>input &rarr; output</div>
    <div><b id="r-time"></b>upscaling (server)</div>
    <div><b id="r-total"></b>round trip</div>
    <div><b><a class="dl" id="download" href="#" download="result.png">Download PNG</a></b><span id="r-bytes"></span></div>
  </div>
  <div class="tools">
    <span>Zoom <select id="zoom"><option value="fit">fit</option><option value="1">100%</option>
      <option value="2">200%</option><option value="4">400%</option></select></span>
    <span>Compare with <select id="cmp">
      <option value="bicubic">bicubic (MATLAB, computed by the server)</option>
      <option value="smooth">the input, scaled by the browser</option>
      <option value="nearest">the input's pixels (nearest)</option></select></span>
    <span id="cmpinfo" class="hint"></span>
  </div>
  <div id="viewer"><div id="stage">
    <img id="after" alt="upscaled result">
    <img id="before" alt="the input, enlarged for comparison">
    <div id="handle"></div><span class="tag" id="tagl">input</span><span class="tag" id="tagr">srkit</span>
  </div></div>
  <input type="range" id="split" min="0" max="100" value="50" step="0.1" aria-label="before/after split">
  <div class="pair">
    <figure><img id="in-small" alt="input"><figcaption id="cap-in">input</figcaption></figure>
    <figure><img id="out-small" alt="result"><figcaption id="cap-out">result</figcaption></figure>
  </div>
</div>
<footer id="foot"></footer>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let models = [], limits = {}, file = null, inURL = null, outURL = null, bicURL = null, outW = 0, outH = 0, runId = 0;

function showError(msg) { const e = $("error"); e.textContent = msg; e.style.display = msg ? "block" : "none"; }
function fmtBytes(n) { return n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(2) + " MiB"; }
function current() { return models.find((m) => m.name === $("model").value); }

async function errorText(resp) {
  try { const j = await resp.json(); if (j && j.error) return j.error; } catch (e) { /* not JSON */ }
  return resp.status + " " + resp.statusText;
}

async function init() {
  try {
    const resp = await fetch("/api/models");
    if (!resp.ok) throw new Error(await errorText(resp));
    const doc = await resp.json();
    models = doc.models; limits = doc.limits || {};
    const sel = $("model");
    for (const m of models) {
      const o = document.createElement("option");
      o.value = m.name; o.textContent = m.name + (m.usable ? "" : " (needs a reference: not available here)");
      o.disabled = !m.usable; sel.appendChild(o);
    }
    sel.value = doc.default;
    if (!current() || !current().usable) { const u = models.find((m) => m.usable); if (u) sel.value = u.name; }
    modelChanged();
    $("foot").textContent = "Limits: uploads up to " + fmtBytes(limits.max_upload_bytes) + ", inputs up to " +
      (limits.max_pixels / 1e6).toFixed(1) + " MP, results up to " + (limits.max_output_pixels / 1e6).toFixed(1) +
      " MP. API: GET /api/models, POST /api/upscale?model=NAME&scale=S (see docs/web.md).";
  } catch (e) { showError("Could not load the model list: " + e.message); }
}

function modelChanged() {
  const m = current(); if (!m) return;
  $("modelinfo").textContent = (m.description || m.arch) + (m.note ? " \u2014 " + m.note : "");
  const box = $("scalebox"); box.textContent = "";
  let ctl;
  if (m.scale_range) {
    ctl = document.createElement("input"); ctl.type = "number"; ctl.step = "any";
    ctl.min = m.scale_range[0]; ctl.max = m.scale_range[1]; ctl.value = m.default_scale;
    $("scaleinfo").textContent = "any scale from \u00d7" + m.scale_range[0] + " to \u00d7" + m.scale_range[1] + ", e.g. 3.7";
  } else {
    ctl = document.createElement("select");
    for (const s of m.scales) { const o = document.createElement("option"); o.value = s; o.textContent = "\u00d7" + s; ctl.appendChild(o); }
    ctl.value = m.default_scale; ctl.disabled = m.scales.length < 2;
    $("scaleinfo").textContent = m.scales.length < 2 ? "this model has one scale" : "the scales this model was trained for";
  }
  ctl.id = "scale"; ctl.name = "scale"; box.appendChild(ctl);
  ctl.addEventListener("input", updateFileInfo);
  updateFileInfo();
}

function setFile(f) {
  showError("");
  if (!f) return;
  if (f.type && !f.type.startsWith("image/")) { showError(f.name + " is not an image (" + f.type + ")"); return; }
  if (limits.max_upload_bytes && f.size > limits.max_upload_bytes) {
    showError(f.name + " is " + fmtBytes(f.size) + ", larger than this server's upload limit of " + fmtBytes(limits.max_upload_bytes));
    return;
  }
  file = f;
  if (inURL) URL.revokeObjectURL(inURL);
  inURL = URL.createObjectURL(f);
  const probe = new Image();
  probe.onload = () => { file.w = probe.naturalWidth; file.h = probe.naturalHeight; updateFileInfo(); };
  probe.onerror = () => { file.w = file.h = 0; updateFileInfo(); };
  probe.src = inURL;
  updateFileInfo();
}

function updateFileInfo() {
  const info = $("fileinfo");
  $("go").disabled = !file || !current() || !current().usable;
  if (!file) { info.textContent = ""; return; }
  let t = (file.name || "pasted image") + ", " + fmtBytes(file.size);
  const s = parseFloat($("scale").value);
  if (file.w) {
    t += ", " + file.w + "\u00d7" + file.h;
    if (s > 0) {
      const ow = Math.max(Math.round(file.w * s), 1), oh = Math.max(Math.round(file.h * s), 1);
      t += " \u2192 " + ow + "\u00d7" + oh;
      if (limits.max_output_pixels && ow * oh > limits.max_output_pixels) t += " (above the server's output limit)";
    }
  }
  info.textContent = t;
}

async function submit(ev) {
  ev.preventDefault();
  if (!file) return;
  showError("");
  const m = current(), scale = $("scale").value;
  const fd = new FormData(); fd.append("file", file, file.name || "pasted.png");
  const url = "/api/upscale?model=" + encodeURIComponent(m.name) + "&scale=" + encodeURIComponent(scale);
  $("go").disabled = true;
  const t0 = performance.now();
  const timer = setInterval(() => { $("status").textContent = "working\u2026 " + ((performance.now() - t0) / 1000).toFixed(1) + " s"; }, 100);
  try {
    const resp = await fetch(url, { method: "POST", body: fd });
    if (!resp.ok) throw new Error(await errorText(resp));
    const blob = await resp.blob();
    const total = (performance.now() - t0) / 1000;
    const h = (k) => resp.headers.get(k) || "?";
    if (outURL) URL.revokeObjectURL(outURL);
    outURL = URL.createObjectURL(blob);
    [outW, outH] = h("X-Srkit-Output-Size").split("x").map(Number);
    $("r-model").textContent = h("X-Srkit-Model");
    $("r-scale").textContent = "\u00d7" + h("X-Srkit-Scale");
    $("r-size").textContent = h("X-Srkit-Input-Size").replace("x", "\u00d7") + " \u2192 " + h("X-Srkit-Output-Size").replace("x", "\u00d7");
    $("r-time").textContent = parseFloat(h("X-Srkit-Seconds")).toFixed(2) + " s";
    $("r-total").textContent = total.toFixed(2) + " s";
    $("r-bytes").textContent = fmtBytes(blob.size) + " PNG";
    const name = ((resp.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/) || [])[1] || "result.png";
    const dl = $("download"); dl.href = outURL; dl.download = name;
    $("after").src = outURL; $("in-small").src = inURL; $("out-small").src = outURL;
    $("tagr").textContent = h("X-Srkit-Model");
    $("cap-in").textContent = "input " + h("X-Srkit-Input-Size"); $("cap-out").textContent = "result " + h("X-Srkit-Output-Size");
    $("result").style.display = "block";
    layout(); setSplit(50);
    $("status").textContent = "done in " + total.toFixed(2) + " s";
    fetchBicubic(m, scale, ++runId);
  } catch (e) {
    showError(e.message); $("status").textContent = "";
  } finally {
    clearInterval(timer); $("go").disabled = false;
  }
}

// The "before" layer: MATLAB bicubic from the server's built-in "bicubic" model when it is offered (a second,
// cheap request), else the input scaled by the browser.
async function fetchBicubic(m, scale, id) {
  if (bicURL) { URL.revokeObjectURL(bicURL); bicURL = null; }
  const offered = models.some((x) => x.name === "bicubic") && m.name !== "bicubic";
  const opt = $("cmp").querySelector("option[value=bicubic]");
  opt.disabled = !offered;
  if (!offered && $("cmp").value === "bicubic") $("cmp").value = "smooth";
  showBefore();
  if (!offered) return;
  $("cmpinfo").textContent = "computing bicubic…";
  try {
    const fd = new FormData(); fd.append("file", file, file.name || "pasted.png");
    const resp = await fetch("/api/upscale?model=bicubic&scale=" + encodeURIComponent(scale), { method: "POST", body: fd });
    if (!resp.ok) throw new Error(await errorText(resp));
    const blob = await resp.blob();
    if (id !== runId) return;  // a newer result replaced this one
    bicURL = URL.createObjectURL(blob);
    $("cmpinfo").textContent = "";
  } catch (e) {
    if (id === runId) $("cmpinfo").textContent = "bicubic unavailable (" + e.message + "); showing the input";
  }
  showBefore();
}

function showBefore() {
  const mode = $("cmp").value, b = $("before");
  const bic = mode === "bicubic" && bicURL;
  b.src = bic ? bicURL : inURL;
  b.classList.toggle("pixelated", mode === "nearest");
  $("tagl").textContent = bic ? "bicubic" : mode === "nearest" ? "input (nearest)" : "input (browser-scaled)";
}

function layout() {
  if (!outW) return;
  const z = $("zoom").value, stage = $("stage"), avail = $("viewer").clientWidth - 2;
  const w = z === "fit" ? (avail > 0 ? Math.min(avail, outW) : outW) : outW * parseFloat(z) / (window.devicePixelRatio || 1);
  stage.style.width = w + "px"; stage.style.height = (w * outH / outW) + "px";
}

function setSplit(p) {
  p = Math.min(100, Math.max(0, p));
  $("before").style.clipPath = "inset(0 " + (100 - p) + "% 0 0)";
  $("handle").style.left = p + "%"; $("split").value = p;
}

function dragAt(ev) {
  const r = $("stage").getBoundingClientRect();
  setSplit(100 * (ev.clientX - r.left) / r.width);
}

$("model").addEventListener("change", modelChanged);
$("form").addEventListener("submit", submit);
$("file").addEventListener("change", (e) => setFile(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("click", () => $("file").click());
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); setFile(e.dataTransfer.files[0]); });
document.addEventListener("paste", (e) => {
  const item = [...(e.clipboardData || {}).items || []].find((i) => i.type.startsWith("image/"));
  if (item) setFile(item.getAsFile());
});
$("split").addEventListener("input", (e) => setSplit(parseFloat(e.target.value)));
$("zoom").addEventListener("change", layout);
$("cmp").addEventListener("change", showBefore);
window.addEventListener("resize", layout);
const stage = $("stage");
stage.addEventListener("pointerdown", (e) => { stage.setPointerCapture(e.pointerId); dragAt(e); });
stage.addEventListener("pointermove", (e) => { if (stage.hasPointerCapture(e.pointerId)) dragAt(e); });
init();
</script>
</body>
</html>
"""


def render_page() -> str:
    """The HTML document served at ``/``."""
    return PAGE
