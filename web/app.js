// vlserve web UI: chat with images and documents, streamed over SSE, with a latency
// waterfall per answer drawn from the server's `timings` (docs/api.md). No dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const log = $("log"), input = $("input"), sendButton = $("send"), stopButton = $("stop");
const history = [];      // OpenAI messages sent so far (user parts include data: URLs)
let attachments = [];    // [{name, url}] images waiting to be sent
let controller = null;   // AbortController of the request in flight

// ---- settings (kept in localStorage so a reload keeps them) ----
for (const id of ["system", "max-tokens", "temperature", "top-p", "seed", "api-key", "extra"]) {
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
  const meta = data[0].meta;  // context length, vision, architecture (routes.cc ModelsJson)
  if (meta) {
    const info = $("model-info");
    info.textContent = [
      meta.n_ctx ? `ctx ${meta.n_ctx.toLocaleString("en-US")}` : "",
      meta.vision ? `vision${meta.projector ? " (" + meta.projector + ")" : ""}` : "text only",
      meta.arch || "",
    ].filter(Boolean).join(" · ");
    info.title = `context: ${meta.n_ctx} tokens served (${meta.n_ctx_train} trained) · ` +
      (meta.vision ? "accepts images" + (meta.documents ? " and documents" : "") : "no vision encoder (--mmproj)") +
      ` · architecture ${meta.arch}`;
    info.hidden = false;
  }
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

// `message` is the history entry of this turn: the document chip's × takes the document
// out of it, so later requests stop sending it.
function userBubble(text, images, doc, message) {
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
    const label = document.createElement("span");
    label.textContent = `[document] ${[...doc].length.toLocaleString("en-US")} characters`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.title = "Remove the document from the conversation (later requests do not send it)";
    remove.onclick = () => {
      const rest = message.content.filter((p) => p.type !== "document");
      message.content = rest.length ? rest : "(document removed)";
      d.classList.add("removed");
      label.textContent = "[document removed]";
      remove.remove();
      saveChats();
    };
    d.append(label, remove);
    div.prepend(d);
  }
}

// The composer's document is sent once: it then lives in the conversation (a chip on the
// user's message) and the document mode is switched off.
function resetDocument(doc = "") {
  $("doc-mode").checked = !!doc;
  $("doc-panel").hidden = !doc;
  $("doc-text").value = doc;
  updateDocStats();
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
  // Only role and content go out: assistant entries also keep their stats for the UI.
  const messages = history.map((m) => ({ role: m.role, content: m.content }));
  const system = $("system").value.trim();
  if (system) messages.unshift({ role: "system", content: system });
  const body = {
    messages, stream: true, stream_options: { include_usage: true },
    max_tokens: Number($("max-tokens").value) || undefined,
    temperature: Number($("temperature").value),
  };
  const topP = $("top-p").value.trim(), seed = $("seed").value.trim();
  if (topP !== "" && Number(topP) !== 1) body.top_p = Number(topP);
  if (seed !== "") body.seed = Number(seed);
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
  const message = { role: "user", content: buildContent(text, images, doc) };
  history.push(message);
  userBubble(text, images, doc, message);
  input.value = "";
  attachments = [];
  drawAttachments();
  if (doc) resetDocument();
  saveChats();
  await complete(doc);
}

// Streams the answer to `history` into a new assistant bubble. `doc`: the document sent with
// the last user message (put back in the composer if the request fails).
async function complete(doc = "") {
  const bubble = addMessage("assistant cursor", "");
  setBusy(true);
  controller = new AbortController();
  const result = { text: "", finish: null, timings: null, usage: null, doc };
  try {
    const r = await fetch("/v1/chat/completions", {
      method: "POST", signal: controller.signal,
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify(requestBody()),
    });
    result.cache = r.headers.get("X-Cache");  // "hit": replayed from the response cache
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
    renderSoon(bubble, result.text);
  }
  if (choice?.finish_reason) result.finish = choice.finish_reason;
  if (chunk.timings) result.timings = chunk.timings;
  if (chunk.usage) result.usage = chunk.usage;
}

// Also draws the answers of a saved conversation: then result.message is its history entry.
function finishBubble(bubble, result) {
  bubble.classList.remove("cursor");
  bubble.pendingText = undefined;
  if (result.error) {
    bubble.querySelector(".body").textContent = result.error;
    history.pop();  // the failed turn is not part of the conversation
    bubble.previousElementSibling?.querySelector(".doc")?.classList.add("removed");
    if (result.doc && !$("doc-text").value) resetDocument(result.doc);  // to send again
    saveChats();
    return;
  }
  const message = result.message ?? { role: "assistant", content: result.text };
  if (!result.message) {
    // Kept with the answer so a saved conversation shows its stats and waterfall again.
    message.result = { finish: result.finish, timings: result.timings, usage: result.usage,
                       cache: result.cache };
    history.push(message);
  }
  bubble.classList.add("md");
  Markdown.render(result.text, bubble.querySelector(".body"));
  const meta = document.createElement("div");
  meta.className = "meta";
  const bits = [];
  if (result.finish) bits.push("finish: " + result.finish);
  if (result.usage) bits.push(`${result.usage.prompt_tokens} prompt + ${result.usage.completion_tokens} completion tokens`);
  const t = result.timings;
  if (t?.ttft !== undefined) bits.push(`TTFT ${fmtMs(t.ttft)}`);
  if (t?.decode_tokens_per_s) bits.push(`${t.decode_tokens_per_s.toFixed(1)} tok/s`);
  // Document parts: what they would have cost as text vs what their pages cost.
  if (t?.document_image_tokens > 0) {
    const ratio = t.document_text_tokens / t.document_image_tokens;
    bits.push(`document: ${t.document_text_tokens.toLocaleString("en-US")} text tokens as ` +
      `${t.document_image_tokens.toLocaleString("en-US")} image tokens (${ratio.toFixed(1)}x)`);
  }
  if (t?.total !== undefined) bits.push(`total ${fmtMs(t.total)}`);
  meta.textContent = bits.join(" · ");
  bubble.append(meta);
  if (t) bubble.append(drawWaterfall(t, result));
  addActions(bubble, message);
  log.scrollTop = log.scrollHeight;
  if (!result.message) saveChats();
}

function setBusy(busy) {
  sendButton.hidden = busy;
  stopButton.hidden = !busy;
  // The answer in flight belongs to the conversation shown: no switching meanwhile.
  document.body.classList.toggle("busy", busy);
  $("new-chat").disabled = busy;
  $("clear").disabled = busy;
}

// Markdown is re-rendered at most every 40 ms while an answer streams in.
function renderSoon(bubble, text) {
  bubble.pendingText = text;
  if (bubble.renderTimer) return;
  bubble.renderTimer = setTimeout(() => {
    bubble.renderTimer = 0;
    if (bubble.pendingText === undefined) return;  // finishBubble rendered the final text
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    Markdown.render(bubble.pendingText, bubble.querySelector(".body"));
    if (atBottom) log.scrollTop = log.scrollHeight;
  }, 40);
}

// Copy (the answer's Markdown source) and Regenerate (drop this answer and everything after
// it, then ask again with the same conversation before it).
function addActions(bubble, message) {
  const bar = document.createElement("div");
  bar.className = "actions";
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "copy";
  copy.textContent = "Copy";
  copy.title = "Copy the answer (Markdown)";
  copy.onclick = () => copyText(message.content, copy);
  const regen = document.createElement("button");
  regen.type = "button";
  regen.className = "regen";
  regen.textContent = "Regenerate";
  regen.title = "Answer again (drops this answer and what follows it)";
  regen.onclick = () => {
    const at = history.indexOf(message);
    if (controller || at < 0) return;
    history.length = at;
    for (let m = bubble; m;) { const next = m.nextElementSibling; m.remove(); m = next; }
    saveChats();
    complete();
  };
  bar.append(copy, regen);
  bubble.append(bar);
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

// Cache hits are labelled on their rows: images from the encoder cache on `encode`, prompt
// tokens from the prefix cache on `prefill`, and a replayed answer (X-Cache: hit) above all.
function cacheTags(t, result) {
  const tags = {};
  if (t.images > 0 && t.images_cached > 0) {
    tags.encode = t.encode_cached ? "cached" : `${t.images_cached}/${t.images} images cached`;
  }
  const cached = result?.usage?.prompt_tokens_details?.cached_tokens;
  if (cached > 0) tags.prefill = `${cached.toLocaleString("en-US")} tokens cached`;
  return tags;
}

function drawWaterfall(t, result) {
  const tags = cacheTags(t, result);
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
    if (tags[r.name]) {
      const tag = document.createElement("span");
      tag.className = "tag cache";
      tag.textContent = tags[r.name];
      track.append(tag);
    }
    const ms = document.createElement("span");
    ms.className = "ms";
    ms.textContent = fmtMs(r.ms);
    grid.append(name, track, ms);
  }
  if (result?.cache !== "hit") return grid;
  const out = document.createDocumentFragment();
  const note = document.createElement("div");
  note.className = "tag cache replay";
  note.textContent = "response cache hit: the answer was replayed";
  out.append(note, grid);
  return out;
}

// ---- conversations, saved in localStorage ----
// vlserve.chats: [{id, title, updated, messages}] newest first; `history` holds the
// messages of the one shown (vlserve.current).
const CHATS_KEY = "vlserve.chats", CURRENT_KEY = "vlserve.current";
let chats = [], current = null;
try {
  chats = JSON.parse(localStorage.getItem(CHATS_KEY) || "[]");
  if (!Array.isArray(chats)) chats = [];
} catch (e) { chats = []; }

// A user message's text, images and document, from its OpenAI content.
function partsOf(content) {
  if (!Array.isArray(content)) return { text: String(content ?? ""), images: [], doc: "" };
  return {
    text: content.filter((p) => p.type === "text").map((p) => p.text).join("\n"),
    images: content.filter((p) => p.type === "image_url").map((p) => ({ name: "image", url: p.image_url.url })),
    doc: content.find((p) => p.type === "document")?.text ?? "",
  };
}

function chatTitle(messages) {
  const first = messages.find((m) => m.role === "user");
  if (!first) return "New chat";
  const { text, images, doc } = partsOf(first.content);
  const title = text || (doc ? "[document]" : images.length ? "[image]" : "");
  return title.replace(/\s+/g, " ").slice(0, 60) || "New chat";
}

function saveChats() {
  if (!current) return;
  current.messages = history.slice();
  current.title = chatTitle(history);
  current.updated = Date.now();
  chats.sort((a, b) => b.updated - a.updated);
  persistChats();
  drawChatList();
}

// Browser storage holds about 5 MB. When it is full the images' bytes are left out (their
// place says so), then the oldest conversations.
function persistChats() {
  const store = (list) => {
    localStorage.setItem(CHATS_KEY, JSON.stringify(list));
    localStorage.setItem(CURRENT_KEY, current?.id ?? "");
  };
  try { store(chats); return; } catch (e) { /* full: slim it down below */ }
  const note = { type: "text", text: "(image not saved: browser storage was full)" };
  const slim = chats.map((c) => ({ ...c, messages: c.messages.map((m) => !Array.isArray(m.content) ? m
    : { ...m, content: m.content.map((p) => p.type === "image_url" ? note : p) }) }));
  for (;;) {
    try { store(slim); return; } catch (e) {
      if (slim.length <= 1) { console.warn("vlserve: conversations not saved:", e); return; }
      slim.pop();
    }
  }
}

function showChat(chat) {
  current = chat;
  history.splice(0, history.length, ...chat.messages);
  log.querySelectorAll(".msg").forEach((m) => m.remove());
  for (const m of history) {
    if (m.role === "user") {
      const { text, images, doc } = partsOf(m.content);
      userBubble(text, images, doc, m);
    } else if (m.role === "assistant") {
      finishBubble(addMessage("assistant", ""), { ...m.result, text: m.content, message: m });
    }
  }
  try { localStorage.setItem(CURRENT_KEY, chat.id); } catch (e) { /* full: stays in memory */ }
  drawChatList();
  document.body.classList.remove("show-chats");
}

function newChat() {
  if (current && history.length === 0) { showChat(current); return; }  // already a fresh one
  const chat = { id: Date.now().toString(36) + Math.random().toString(36).slice(2, 6),
                 title: "New chat", updated: Date.now(), messages: [] };
  chats.unshift(chat);
  showChat(chat);
  persistChats();
}

function drawChatList() {
  $("chat-list").replaceChildren(...chats.map((chat) => {
    const li = document.createElement("li");
    li.className = chat === current ? "current" : "";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.textContent = chat.title;
    open.title = `${chat.title}\n${new Date(chat.updated).toLocaleString()}`;
    open.onclick = () => { if (!controller && chat !== current) showChat(chat); };
    const del = document.createElement("button");
    del.type = "button";
    del.className = "delete";
    del.textContent = "×";
    del.title = "Delete this conversation";
    del.onclick = () => {
      if (controller) return;
      chats = chats.filter((c) => c !== chat);
      if (chat === current) {
        current = null;
        if (chats.length) showChat(chats[0]); else newChat();
      }
      persistChats();
      drawChatList();
    };
    li.append(open, del);
    return li;
  }));
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
  saveChats();
});
$("new-chat").addEventListener("click", () => { if (!controller) newChat(); });
$("chats-toggle").addEventListener("click", () => document.body.classList.toggle("show-chats"));
// On a phone the list lies over the chat: a click beside it or Escape folds it away.
document.addEventListener("click", (e) => {
  if (!e.target.closest("#chats, #chats-toggle")) document.body.classList.remove("show-chats");
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") document.body.classList.remove("show-chats");
});
{
  const saved = chats.find((c) => c.id === localStorage.getItem(CURRENT_KEY)) ?? chats[0];
  if (saved) showChat(saved); else newChat();
}
pollHealth();
setInterval(pollHealth, 5000);
