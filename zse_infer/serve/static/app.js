// The sketch pad: plain JavaScript, no build step, nothing fetched from elsewhere.
// Strokes are kept as point lists so undo can redraw; a dropped or opened file becomes the background.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const $ = (id) => document.getElementById(id);
const strokes = []; // [{size, points: [[x, y], ...]}]
let background = null; // an ImageBitmap/HTMLImageElement drawn under the strokes
let current = null;
let searchSeq = 0;
const objectUrls = [];

$("token").value = localStorage.getItem("zse-token") || "";
$("token").addEventListener("change", () => localStorage.setItem("zse-token", $("token").value));

function authHeaders(extra) {
  const headers = Object.assign({}, extra || {});
  const token = $("token").value.trim();
  if (token) headers["Authorization"] = "Bearer " + token;
  return headers;
}

function redraw() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  if (background) {
    const s = Math.min(pad.width / background.width, pad.height / background.height);
    const w = background.width * s, h = background.height * s;
    ctx.drawImage(background, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
  }
  ctx.strokeStyle = "#000";
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  for (const stroke of strokes) {
    ctx.lineWidth = stroke.size;
    ctx.beginPath();
    stroke.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    if (stroke.points.length === 1) ctx.lineTo(stroke.points[0][0] + 0.1, stroke.points[0][1]);
    ctx.stroke();
  }
}

function point(event) {
  const r = pad.getBoundingClientRect();
  return [((event.clientX - r.left) * pad.width) / r.width, ((event.clientY - r.top) * pad.height) / r.height];
}

// Pointer events cover mouse, touch and pen alike; a pen's pressure thickens its stroke.
pad.addEventListener("pointerdown", (event) => {
  if (event.button !== 0 && event.pointerType === "mouse") return;
  pad.setPointerCapture(event.pointerId);
  const pressure = event.pointerType === "pen" && event.pressure > 0 ? 0.5 + event.pressure : 1;
  current = { size: Number($("brush").value) * 2 * pressure, points: [point(event)] };
  strokes.push(current);
  redraw();
  event.preventDefault();
});
pad.addEventListener("pointermove", (event) => {
  if (!current) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) current.points.push(point(e));
  redraw();
});
function endStroke() {
  if (!current) return;
  current = null;
  if ($("live").checked) search();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

$("undo").addEventListener("click", () => { strokes.pop(); redraw(); });
document.addEventListener("keydown", (e) => { if ((e.ctrlKey || e.metaKey) && e.key === "z") { strokes.pop(); redraw(); } });
$("clear").addEventListener("click", () => {
  strokes.length = 0; background = null; redraw();
  $("grid").replaceChildren(); status("");
});

function loadFile(file) {
  if (!file) return;
  const img = new Image();
  const url = URL.createObjectURL(file);
  img.onload = () => { background = img; strokes.length = 0; redraw(); search(); };
  img.onerror = () => status(`${file.name}: the browser cannot read this image`, true);
  img.src = url;
}
$("file").addEventListener("change", (e) => loadFile(e.target.files[0]));
pad.addEventListener("dragover", (e) => { e.preventDefault(); pad.classList.add("drop"); });
pad.addEventListener("dragleave", () => pad.classList.remove("drop"));
pad.addEventListener("drop", (e) => {
  e.preventDefault(); pad.classList.remove("drop");
  loadFile(e.dataTransfer.files[0]);
});

function status(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", !!isError);
}

async function errorText(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${body.error.message}`;
  } catch (_) {
    return `HTTP ${response.status}`;
  }
}

function sketchBlob() {
  return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
}

async function photoSrc(url) {
  // fetch (not <img src>) so a token travels in a header, never in a URL
  const response = await fetch(url, { headers: authHeaders() });
  if (!response.ok) throw new Error(await errorText(response));
  const objectUrl = URL.createObjectURL(await response.blob());
  objectUrls.push(objectUrl);
  return objectUrl;
}

async function search() {
  if (!strokes.length && !background) { status("Draw something first.", true); return; }
  const seq = ++searchSeq;
  const form = new FormData();
  form.append("sketch", await sketchBlob(), "sketch.png");
  const params = new URLSearchParams({ k: $("k").value || "12" });
  if ($("rerank").value.trim()) params.set("rerank", $("rerank").value.trim());
  status("Searching…");
  let response;
  try {
    response = await fetch("/v1/search?" + params, { method: "POST", body: form, headers: authHeaders() });
  } catch (err) {
    status("The server cannot be reached: " + err.message, true);
    return;
  }
  if (seq !== searchSeq) return; // a newer search is on its way
  if (!response.ok) { status(await errorText(response), true); return; }
  const body = await response.json();
  objectUrls.splice(0).forEach((u) => URL.revokeObjectURL(u));
  const grid = $("grid");
  grid.replaceChildren();
  for (const hit of body.hits) {
    const card = document.createElement("figure");
    card.className = "hit";
    card.tabIndex = 0;
    card.dataset.id = hit.id;
    const img = document.createElement("img");
    img.alt = hit.name;
    const caption = document.createElement("figcaption");
    caption.innerHTML = `<div class="score"></div><div class="id"></div>`;
    caption.querySelector(".score").textContent = `#${hit.rank}  ${hit.score.toFixed(3)}${hit.stage === 1 ? " (stage 1)" : ""}`;
    caption.querySelector(".id").textContent = hit.name;
    caption.querySelector(".id").title = hit.id;
    card.append(img, caption);
    card.addEventListener("click", () => explain(hit));
    card.addEventListener("keydown", (e) => { if (e.key === "Enter") explain(hit); });
    grid.append(card);
    photoSrc(hit.photo_url).then((src) => { img.src = src; }).catch((err) => { img.alt = err.message; });
  }
  const t = body.timing_ms;
  status(`${body.hits.length} results in ${t.total.toFixed(0)} ms (encode ${t.encode.toFixed(0)}, rerank ${t.stage2.toFixed(0)}, batch of ${body.batch_size})`);
}

async function explain(hit) {
  const form = new FormData();
  form.append("sketch", await sketchBlob(), "sketch.png");
  form.append("id", hit.id);
  status(`Explaining ${hit.name}…`);
  const response = await fetch("/v1/explain", { method: "POST", body: form, headers: authHeaders({ Accept: "image/png" }) });
  if (!response.ok) { status(await errorText(response), true); return; }
  const url = URL.createObjectURL(await response.blob());
  objectUrls.push(url);
  $("explain-img").src = url;
  $("explain-title").textContent = `Why #${hit.rank} matches (relation score ${Number(response.headers.get("X-Relation-Score")).toFixed(3)})`;
  $("explain").hidden = false;
  status("");
}
$("close").addEventListener("click", () => { $("explain").hidden = true; });
$("explain").addEventListener("click", (e) => { if (e.target === $("explain")) $("explain").hidden = true; });
document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("explain").hidden = true; });
$("search").addEventListener("click", search);
redraw();
