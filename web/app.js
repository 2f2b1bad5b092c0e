// vlserve web UI: chat with images and documents, streamed over SSE, with a latency
// waterfall per answer drawn from the server's `timings` (docs/api.md). No dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const log = $("log"), input = $("input"), sendButton = $("send"), stopButton = $("stop");
const history = [];      // OpenAI messages sent so far (user parts include data: URLs)
let attachments = [];    // [{name, url}] images waiting to be sent
let controller = null;   // AbortController of the request in flight

// ---- settings (kept in localStorage so a reload keeps them) ----
for (const id of ["max-tokens", "temperature", "api-key", "extra"]) {
  const el = $(id), saved = localStorage.getItem("vlserve." + id);
  if (saved !== null) el.value = saved;
  el.addEventListener("change", () => localStorage.setItem("vlserve." + id, el.value));
}

function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: "Bearer " + key } : {};
}

// ---- health and model id ----
async function pollHealth() {
  const el = $("health"), text = el.querySelector("span");
  try {
    const r = await fetch("/health", { cache: "no-store" });
    const body = await r.json().catch(() => ({}));
    el.className = "pill " + (r.ok ? "ok" : "loading");
    text.textContent = r.ok ? "ready" : body.status === "error" ? "error: " + body.error
                                                                  : "loading…";
    if (r.ok && !$("model").dataset.id) await loadModel();
  } catch (e) {
    el.className = "pill down";
    text.textContent = "unreachable";
  }
}

async function loadModel() {
  const r = await fetch("/v1/models", { headers: authHeaders() });
  if (!r.ok) { $("model").textContent = "model: (HTTP " + r.status + ")"; return; }
  const data = (await r.json()).data || [];
  if (data.length === 0) return;
  $("model").dataset.id = data[0].id;
  $("model").textContent = "model: " + data[0].id;
}

// ---- attachments: file picker, paste, drag and drop ----
function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function addFiles(files) {
  for (const file of files) {
    if (!file.type.startsWith("image/")) continue;
    attachments.push({ name: file.name || "pasted image", url: await readAsDataUrl(file) });
  }
  drawAttachments();
}

function drawAttachments() {
  const box = $("attachments");
  box.replaceChildren();
  attachments.forEach((a, i) => {
    const div = document.createElement("div");
    div.className = "att";
    const img = document.createElement("img");
    img.src = a.url;
    img.alt = img.title = a.name;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.title = "Remove";
    remove.onclick = () => { attachments.splice(i, 1); drawAttachments(); };
    div.append(img, remove);
    box.append(div);
  });
}

$("file").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
document.addEventListener("paste", (e) => {
  const files = [...(e.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
  if (files.length) { e.preventDefault(); addFiles(files); }
});
let dragDepth = 0;
document.addEventListener("dragenter", (e) => { e.preventDefault(); dragDepth++; $("drop").hidden = false; });
document.addEventListener("dragleave", () => { if (--dragDepth <= 0) { dragDepth = 0; $("drop").hidden = true; } });
document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("drop", (e) => {
  e.preventDefault();
  dragDepth = 0;
  $("drop").hidden = true;
  addFiles(e.dataTransfer.files);
});

// ---- document mode: the rendered pages and the token savings from POST /v1/render ----
let docTimer = 0, docSeq = 0;
$("doc-mode").addEventListener("change", (e) => { $("doc-panel").hidden = !e.target.checked; });
$("doc-text").addEventListener("input", () => {
  clearTimeout(docTimer);
  docTimer = setTimeout(updateDocStats, 400);
});

async function updateDocStats() {
  const text = $("doc-text").value, out = $("doc-stats"), pages = $("doc-pages");
  const seq = ++docSeq;  // a slow answer must not overwrite a newer one
  if (!text) { out.textContent = ""; pages.replaceChildren(); return; }
  let line = `${[...text].length.toLocaleString()} characters`;
  try {
    const r = await fetch("/v1/render", {
      method: "POST", headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify({ text, max_images: 6 }),
    });
    const j = await r.json();
    if (seq !== docSeq) return;
    if (!r.ok) throw new Error(j.error?.message || r.status);
    line += ` · ${j.text_tokens.toLocaleString("en-US")} tokens as plain text` +
      ` · ${j.pages} page${j.pages === 1 ? "" : "s"} = ${j.image_tokens.toLocaleString("en-US")} image tokens` +
      (j.compression > 0 ? ` (${j.compression.toFixed(1)}x ${j.compression >= 1 ? "fewer" : "more"})` : "");
    pages.replaceChildren(...j.images.map((src, i) => {
      const img = document.createElement("img");
      img.src = src;
      img.alt = img.title = `page ${i + 1} (${j.sizes[i][0]}x${j.sizes[i][1]})`;
      return img;
    }));
  } catch (e) {
    if (seq !== docSeq) return;
    pages.replaceChildren();
    line += ` · preview unavailable: ${e.message}`;
  }
  out.textContent = line;
}

// ---- messages ----
function addMessage(cls, text) {
  const div = document.createElement("div");
  div.className = "msg " + cls;
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = text;
  div.append(body);
  log.append(div);
  log.scrollTop = log.scrollHeight;
  return div;
}

function userBubble(text, images, doc) {
  const div = addMessage("user", text);
  if (images.length) {
    const thumbs = document.createElement("div");
    thumbs.className = "thumbs";
    for (const a of images) {
      const img = document.createElement("img");
      img.src = a.url;
      img.alt = a.name;
      thumbs.append(img);
    }
    div.prepend(thumbs);
  }
  if (doc) {
    const d = document.createElement("div");
    d.className = "doc";
    d.textContent = `[document] ${[...doc].length.toLocaleString()} characters`;
    div.prepend(d);
  }
}

function buildContent(text, images, doc) {
  if (!images.length && !doc) return text;
  const parts = [];
  if (doc) parts.push({ type: "document", text: doc });
  for (const a of images) parts.push({ type: "image_url", image_url: { url: a.url } });
  if (text) parts.push({ type: "text", text });
  return parts;
}

function requestBody() {
  const body = {
    messages: history, stream: true, stream_options: { include_usage: true },
    max_tokens: Number($("max-tokens").value) || undefined,
    temperature: Number($("temperature").value),
  };
  const extra = $("extra").value.trim();
  if (extra) Object.assign(body, JSON.parse(extra));  // a syntax error is shown to the user
  return body;
}

// ---- sending and streaming ----
async function send() {
  const text = input.value.trim();
  const doc = $("doc-mode").checked ? $("doc-text").value : "";
  if (!text && !attachments.length && !doc) return;
  const images = attachments;
  history.push({ role: "user", content: buildContent(text, images, doc) });
  userBubble(text, images, doc);
  input.value = "";
  attachments = [];
  drawAttachments();
  const bubble = addMessage("assistant cursor", "");
  setBusy(true);
  controller = new AbortController();
  const result = { text: "", finish: null, timings: null, usage: null };
  try {
    const r = await fetch("/v1/chat/completions", {
      method: "POST", signal: controller.signal,
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify(requestBody()),
    });
    if (!r.ok) {
      const err = await r.json().catch(() => null);
      throw new Error(err?.error?.message ? `${r.status}: ${err.error.message}` : `HTTP ${r.status}`);
    }
    await readEvents(r.body, (chunk) => onChunk(chunk, result, bubble));
  } catch (e) {
    if (e.name === "AbortError") result.finish = "stopped";
    else { bubble.classList.add("error"); result.error = e.message; }
  } finally {
    controller = null;
    setBusy(false);
    finishBubble(bubble, result);
  }
}

// Parses a text/event-stream body; calls onData with each event's parsed JSON `data`.
async function readEvents(stream, onData) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const record = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      const data = record.split(/\r?\n/).filter((l) => l.startsWith("data:"))
                         .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      onData(JSON.parse(data));
    }
  }
}

function onChunk(chunk, result, bubble) {
  if (chunk.error) throw new Error(chunk.error.message || "server error");
  const choice = chunk.choices?.[0];
  if (choice?.delta?.content) {
    result.text += choice.delta.content;
    bubble.querySelector(".body").textContent = result.text;
    log.scrollTop = log.scrollHeight;
  }
  if (choice?.finish_reason) result.finish = choice.finish_reason;
  if (chunk.timings) result.timings = chunk.timings;
  if (chunk.usage) result.usage = chunk.usage;
}

function finishBubble(bubble, result) {
  bubble.classList.remove("cursor");
  if (result.error) {
    bubble.querySelector(".body").textContent = result.error;
    history.pop();  // the failed turn is not part of the conversation
    return;
  }
  history.push({ role: "assistant", content: result.text });
  const meta = document.createElement("div");
  meta.className = "meta";
  const bits = [];
  if (result.finish) bits.push("finish: " + result.finish);
  if (result.usage) bits.push(`${result.usage.prompt_tokens} prompt + ${result.usage.completion_tokens} completion tokens`);
  const t = result.timings;
  if (t?.ttft !== undefined) bits.push(`TTFT ${fmtMs(t.ttft)}`);
  if (t?.decode_tokens_per_s) bits.push(`${t.decode_tokens_per_s.toFixed(1)} tok/s`);
  if (t?.total !== undefined) bits.push(`total ${fmtMs(t.total)}`);
  meta.textContent = bits.join(" · ");
  bubble.append(meta);
  if (t) bubble.append(drawWaterfall(t));
  log.scrollTop = log.scrollHeight;
}

function setBusy(busy) {
  sendButton.hidden = busy;
  stopButton.hidden = !busy;
}

// ---- latency waterfall ----
// Stages in pipeline order; `seq` stages are laid end to end from arrival (they run one
// after another for a single request). ttft and total are spans from arrival, decode runs
// from the first token to the last.
const STAGES = [
  ["http_read", "io", "seq"], ["parse", "cpu", "seq"], ["media_fetch", "media", "seq"],
  ["image_decode", "media", "seq"], ["render", "media", "seq"], ["preprocess", "media", "seq"],
  ["tokenize", "cpu", "seq"], ["queue", "wait", "seq"], ["encode", "gpu", "seq"],
  ["prefill", "gpu", "seq"], ["ttft", "span", "arrival"], ["decode", "gpu", "first_token"],
  ["total", "span", "arrival"],
];

function fmtMs(ms) {
  return ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : ms >= 10 ? ms.toFixed(0) + " ms"
                                                               : ms.toFixed(2) + " ms";
}

function waterfallRows(t) {
  const rows = [];
  let cursor = 0;
  for (const [name, kind, anchor] of STAGES) {
    const ms = t[name];
    if (typeof ms !== "number" || !(ms >= 0)) continue;  // absent or negative: did not run
    let start = 0;
    if (anchor === "seq") { start = cursor; cursor += ms; }
    else if (anchor === "first_token") start = typeof t.ttft === "number" ? t.ttft : cursor;
    rows.push({ name, kind, start, ms });
  }
  return rows;
}

function drawWaterfall(t) {
  const rows = waterfallRows(t);
  const scale = Math.max(1e-9, ...rows.map((r) => r.start + r.ms));
  const grid = document.createElement("div");
  grid.className = "waterfall";
  for (const r of rows) {
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = r.name;
    const track = document.createElement("span");
    track.className = "track";
    const bar = document.createElement("span");
    bar.className = "bar " + r.kind;
    bar.style.left = (100 * r.start / scale).toFixed(3) + "%";
    bar.style.width = (100 * r.ms / scale).toFixed(3) + "%";
    bar.title = `${r.name}: ${r.ms} ms (starts at ${fmtMs(r.start)})`;
    track.append(bar);
    const ms = document.createElement("span");
    ms.className = "ms";
    ms.textContent = fmtMs(r.ms);
    grid.append(name, track, ms);
  }
  return grid;
}

// ---- wiring ----
$("composer").addEventListener("submit", (e) => { e.preventDefault(); if (!controller) send(); });
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
});
stopButton.addEventListener("click", () => controller?.abort());
$("clear").addEventListener("click", () => {
  history.length = 0;
  log.querySelectorAll(".msg").forEach((m) => m.remove());
});
pollHealth();
setInterval(pollHealth, 5000);
