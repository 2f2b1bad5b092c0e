// The web UI in headless Chromium (playwright-core drives the system browser; nothing is
// downloaded): model id and health, image attach + preview, streamed text, Stop, the
// latency waterfall and its cache labels, documents, Markdown, copy / regenerate, saved
// conversations, settings, model details, dark mode and the phone layout. Each saves a
// screenshot under artifacts/. Skipped when no Chromium is installed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { serverUrl, kNoSpecialTokens, kPngBase64, artifactsDir, chromiumPath,
  chromiumSkip } from "./helpers.js";

const executablePath = chromiumPath;
const skip = chromiumSkip;

let browser, page, url;

before(async () => {
  if (skip) return;
  url = await serverUrl();
  fs.mkdirSync(artifactsDir, { recursive: true });
  // --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
  browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on("pageerror", (e) => { throw e; });
  // The test model writes a whole answer in a fraction of a second. To watch it stream
  // (and to press Stop in time), the page's fetch can delay each network chunk of a chat
  // response (each SSE record) by window.slowChunkMs; the bytes are the server's own.
  await page.addInitScript(() => {
    const realFetch = window.fetch;
    window.slowChunkMs = 0;
    window.fetch = async (...args) => {
      const r = await realFetch(...args);
      const signal = args[1]?.signal;
      if (!window.slowChunkMs || !String(args[0]).includes("chat/completions") || !r.ok) return r;
      // Splits each network chunk after every blank line ("\n\n" ends an SSE record).
      const delay = new TransformStream({
        async transform(chunk, out) {
          let start = 0;
          for (let i = 1; i <= chunk.length; i++) {
            if (i < chunk.length && !(chunk[i - 1] === 10 && chunk[i] === 10)) continue;
            await new Promise((done) => setTimeout(done, window.slowChunkMs));
            signal?.throwIfAborted();  // Stop must not wait for the delayed records
            out.enqueue(chunk.subarray(start, Math.min(i + 1, chunk.length)));
            start = i + 1;
          }
        },
      });
      return new Response(r.body.pipeThrough(delay), { status: r.status, headers: r.headers });
    };
  });
});

after(async () => { await browser?.close(); });

async function settings({ maxTokens, temperature = 0 }) {
  const details = page.locator("#settings");
  if (!(await details.evaluate((d) => d.open))) await page.click("#settings summary");
  await page.fill("#max-tokens", String(maxTokens));
  await page.fill("#temperature", String(temperature));
  // The noise model's special tokens print nothing; ban them so text is visible.
  await page.fill("#extra", JSON.stringify({ logit_bias: kNoSpecialTokens }));
}

const lastAssistant = () => page.locator(".msg.assistant").last();

test("page shows the model id and health", { skip }, async () => {
  await page.goto(url + "/");
  assert.equal(await page.title(), "vlserve");
  const models = await (await fetch(url + "/v1/models")).json();
  await page.locator("#model").filter({ hasText: models.data[0].id }).waitFor({ timeout: 10_000 });
  await page.locator("#health.ok").waitFor({ timeout: 10_000 });
  assert.equal(await page.textContent("#health span"), "ready");
});

test("an attached image is previewed and sent as an image_url part", { skip }, async () => {
  await settings({ maxTokens: 8 });
  await page.setInputFiles("#file", {
    name: "shapes.png", mimeType: "image/png", buffer: Buffer.from(kPngBase64, "base64") });
  const preview = page.locator("#attachments img");
  await preview.waitFor();
  assert.match(await preview.getAttribute("src"), /^data:image\/png;base64,iVBORw0KGgo/);
  await page.screenshot({ path: path.join(artifactsDir, "attach.png") });

  const sent = page.waitForRequest((r) => r.url().endsWith("/v1/chat/completions"));
  await page.fill("#input", "What is in this image?");
  await page.press("#input", "Enter");
  const body = (await sent).postDataJSON();
  const parts = body.messages.at(-1).content;
  assert.deepEqual(parts.map((p) => p.type), ["image_url", "text"]);
  assert.equal(parts[0].image_url.url, "data:image/png;base64," + kPngBase64);
  assert.equal(body.stream, true);
  assert.equal(await page.locator("#attachments img").count(), 0, "attachments are cleared");
  await page.locator("#send:not([hidden])").waitFor();
  // The built-in model has a vision tower: a streamed answer and a waterfall with the
  // image stages.
  const bubble = lastAssistant();
  assert.equal(await bubble.evaluate((b) => b.classList.contains("error")), false,
               await bubble.locator(".body").textContent());
  assert.ok((await bubble.locator(".body").textContent()).length > 0);
  await bubble.locator(".waterfall").waitFor({ timeout: 20_000 });
  const stages = await bubble.locator(".waterfall .name").allTextContents();
  for (const stage of ["media_fetch", "encode", "prefill"]) {  // decode: unless cached
    assert.ok(stages.includes(stage), `waterfall has ${stage} (got ${stages})`);
  }
  await page.screenshot({ path: path.join(artifactsDir, "image-answer.png") });
  assert.equal(await page.locator(".msg.user .thumbs img").count(), 1, "thumbnail in the chat");
});

test("Stop aborts a streaming answer", { skip }, async () => {
  await settings({ maxTokens: 100000 });
  await page.evaluate(() => { window.slowChunkMs = 150; });
  await page.fill("#input", "Count forever");
  await page.click("#send");
  const bubble = lastAssistant();
  await bubble.locator(".body").filter({ hasText: /./ }).waitFor();  // text is streaming in
  await page.click("#stop");
  await page.locator("#send:not([hidden])").waitFor();
  await page.evaluate(() => { window.slowChunkMs = 0; });
  assert.match(await bubble.locator(".meta").textContent(), /^finish: stopped/);
  const metrics = async () => (await (await fetch(url + "/metrics")).text())
    .match(/^vlserve_requests_running\s+(\S+)/m)[1];
  for (let i = 0; i < 50 && (await metrics()) !== "0"; i++) await page.waitForTimeout(100);
  assert.equal(await metrics(), "0", "the server dropped the stopped request");
  assert.ok((await bubble.locator(".body").textContent()).length > 0, "partial text is kept");
  assert.equal(await bubble.locator(".waterfall").count(), 0, "no timings for a stopped answer");
});

test("streamed text appears and a waterfall is drawn from timings", { skip }, async () => {
  await settings({ maxTokens: 48 });
  await page.evaluate(() => { window.slowChunkMs = 30; });
  await page.fill("#input", "Hello, vlserve!");
  // Count how many distinct texts the bubble shows while the answer streams in.
  await page.evaluate(() => {
    window.seenTexts = new Set();
    new MutationObserver(() => {
      const b = [...document.querySelectorAll(".msg.assistant .body")].at(-1);
      if (b?.textContent) window.seenTexts.add(b.textContent);
    }).observe(document.getElementById("log"), { subtree: true, childList: true, characterData: true });
  });
  await page.click("#send");
  const bubble = lastAssistant();
  await bubble.locator(".waterfall").waitFor({ timeout: 20_000 });
  await page.evaluate(() => { window.slowChunkMs = 0; });
  const text = await bubble.locator(".body").textContent();
  assert.ok(text.length > 0, "the answer has visible text");
  assert.ok(await page.evaluate(() => window.seenTexts.size) >= 2,
            "the text grew over several updates (streamed, not all at once)");
  const meta = await bubble.locator(".meta").textContent();
  assert.match(meta, /finish: length/);
  assert.match(meta, /48 completion tokens/);
  const names = await bubble.locator(".waterfall .name").allTextContents();
  for (const stage of ["parse", "prefill", "ttft", "decode", "total"]) {
    assert.ok(names.includes(stage), `waterfall has ${stage} (got ${names})`);
  }
  // The total bar spans the whole track; every bar lies inside it.
  const bars = await bubble.locator(".waterfall .bar").evaluateAll((els) => els.map((e) => {
    const r = e.getBoundingClientRect(), t = e.parentElement.getBoundingClientRect();
    return { left: r.left - t.left, right: r.right - t.left, width: t.width };
  }));
  const total = bars[names.indexOf("total")];
  assert.ok(Math.abs(total.right - total.width) < 1.5 && total.left < 1.5, "total spans the track");
  for (const b of bars) assert.ok(b.left >= -0.5 && b.right <= b.width + 0.5);
  await page.click("#settings summary");  // close the settings for a cleaner picture
  await page.screenshot({ path: path.join(artifactsDir, "chat.png"), fullPage: true });
});

test("document mode counts tokens and sends a document part", { skip }, async () => {
  await settings({ maxTokens: 8 });
  await page.check("#doc-mode");
  const doc = "The quick brown fox jumps over the lazy dog. ".repeat(40);
  await page.fill("#doc-text", doc);
  // The counts come from POST /v1/render; compare with the server's own answers.
  const expected = (await (await fetch(url + "/tokenize", {
    method: "POST", body: JSON.stringify({ content: doc }) })).json()).tokens.length;
  const render = await (await fetch(url + "/v1/render", {
    method: "POST", body: JSON.stringify({ text: doc }) })).json();
  assert.ok(render.pages >= 1 && render.image_tokens > 0);
  await page.locator("#doc-stats").filter({
    hasText: `${expected.toLocaleString("en-US")} tokens as plain text` }).waitFor({ timeout: 5000 });
  assert.match(await page.locator("#doc-stats").textContent(),
               new RegExp(`${render.pages} pages? = ${render.image_tokens.toLocaleString("en-US")} image tokens`));
  await page.locator("#doc-pages img").first().waitFor();
  assert.equal(await page.locator("#doc-pages img").count(), Math.min(render.pages, 6));
  await page.screenshot({ path: path.join(artifactsDir, "document-mode.png") });
  const sent = page.waitForRequest((r) => r.url().endsWith("/v1/chat/completions"));
  await page.fill("#input", "Summarise the document.");
  await page.click("#send");
  const parts = (await sent).postDataJSON().messages.at(-1).content;
  assert.deepEqual(parts, [{ type: "document", text: doc },
                           { type: "text", text: "Summarise the document." }]);
  await page.locator("#send:not([hidden])").waitFor();
  assert.match(await page.locator(".msg.user .doc").last().textContent(), /1,800 characters/);
  const bubble = lastAssistant();
  assert.equal(await bubble.evaluate((b) => b.classList.contains("error")), false,
               await bubble.locator(".body").textContent());
  await bubble.locator(".waterfall").waitFor({ timeout: 20_000 });
  const stages = await bubble.locator(".waterfall .name").allTextContents();
  assert.ok(stages.includes("render"), `a document answer has a render stage (got ${stages})`);
  await page.uncheck("#doc-mode");
});

test("a document is sent once and stays as a removable chip", { skip }, async () => {
  await settings({ maxTokens: 4 });
  await page.click("#clear");
  const doc = "Glyph renders long text into pages. ".repeat(20);
  const countDocs = (messages) => messages.flatMap((m) => Array.isArray(m.content) ? m.content : [])
    .filter((p) => p.type === "document").length;
  const ask = async (question) => {
    const sent = page.waitForRequest((r) => r.url().endsWith("/v1/chat/completions"));
    await page.fill("#input", question);
    await page.click("#send");
    const body = (await sent).postDataJSON();
    await page.locator("#send:not([hidden])").waitFor();
    const bubble = lastAssistant();
    assert.equal(await bubble.evaluate((b) => b.classList.contains("error")), false,
                 await bubble.locator(".body").textContent());
    return body.messages;
  };
  await page.check("#doc-mode");
  await page.fill("#doc-text", doc);
  const first = await ask("What is this about?");
  assert.equal(countDocs(first), 1);
  // Sent: the composer's document mode is off and empty again.
  assert.equal(await page.isChecked("#doc-mode"), false, "document mode is switched off");
  assert.equal(await page.inputValue("#doc-text"), "");
  assert.equal(await page.locator("#doc-panel").isHidden(), true);
  const chip = page.locator(".msg.user .doc").last();
  assert.match(await chip.textContent(), /\[document\] 720 characters/);

  // The follow-up carries the document once (in the first turn), not a second copy.
  const second = await ask("And in one word?");
  assert.equal(countDocs(second), 1, "the document is in the conversation exactly once");
  assert.deepEqual(second.at(0).content.find((p) => p.type === "document"),
                   { type: "document", text: doc });
  assert.equal(second.at(-1).content, "And in one word?", "the follow-up is plain text");
  await page.screenshot({ path: path.join(artifactsDir, "document-chip.png") });

  // The chip's × takes the document out of the conversation.
  await chip.locator("button").click();
  assert.match(await chip.textContent(), /document removed/);
  const third = await ask("Still there?");
  assert.equal(countDocs(third), 0, "a removed document is not sent again");
  assert.deepEqual(third.at(0).content, [{ type: "text", text: "What is this about?" }]);
});

// ---- issue #18 §3: the features a chat UI is chosen for ----

// A canned streamed answer (the test model only writes noise): `text` in a few deltas.
function sseBody(text, pieces = 5) {
  const size = Math.ceil(text.length / pieces), records = [];
  const chunk = (delta, finish) => `data: ${JSON.stringify({ id: "chatcmpl-test",
    object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  for (let i = 0; i < text.length; i += size) records.push(chunk({ content: text.slice(i, i + size) }, null));
  records.push(chunk({}, "stop"), "data: [DONE]\n\n");
  return records.join("");
}

const kMarkdown = [
  "## Plan",
  "",
  "Some **bold**, *italic* and `inline code`; a [link](https://example.com/a) and a [bad one](javascript:alert(1)).",
  "",
  "- one",
  "- two",
  "  - nested",
  "",
  "1. first",
  "2. second",
  "",
  "```python",
  "print('<b>hi</b>')",
  "```",
  "",
  "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>",
  "",
  "| a | b |",
  "|---|---|",
  "| 1 | 2 |",
].join("\n");

test("answers render Markdown and code safely, with copy buttons", { skip }, async () => {
  await page.click("#new-chat");
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: url });
  await page.route("**/v1/chat/completions", (route) => route.fulfill({
    status: 200, contentType: "text/event-stream", body: sseBody(kMarkdown) }));
  try {
    await page.fill("#input", "Show me Markdown");
    await page.click("#send");
    await page.locator("#send:not([hidden])").waitFor();
  } finally {
    await page.unroute("**/v1/chat/completions");
  }
  const body = lastAssistant().locator(".body");
  assert.equal(await body.locator("h2").textContent(), "Plan");
  assert.equal(await body.locator("strong").textContent(), "bold");
  assert.equal(await body.locator("em").textContent(), "italic");
  assert.equal(await body.locator("p code").textContent(), "inline code");
  assert.equal(await body.locator("a").count(), 1, "only the https link is a link");
  assert.equal(await body.locator("a").getAttribute("href"), "https://example.com/a");
  assert.match(await body.textContent(), /\[bad one\]\(javascript:alert\(1\)\)/);
  assert.deepEqual(await body.locator(":scope > ul > li").evaluateAll(
    (lis) => lis.map((li) => li.firstChild.textContent)), ["one", "two"]);
  assert.equal(await body.locator("ul ul > li").textContent(), "nested");
  assert.deepEqual(await body.locator("ol > li").allTextContents(), ["first", "second"]);
  const code = body.locator("pre code");
  assert.equal(await code.getAttribute("data-lang"), "python");
  assert.equal(await code.textContent(), "print('<b>hi</b>')");
  assert.deepEqual(await body.locator("th").allTextContents(), ["a", "b"]);
  assert.deepEqual(await body.locator("td").allTextContents(), ["1", "2"]);
  // The model's HTML is text, never markup.
  assert.equal(await body.locator("img, script, b").count(), 0);
  assert.match(await body.textContent(), /<img src=x onerror="window.pwned=1"><script>/);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  await page.screenshot({ path: path.join(artifactsDir, "markdown.png") });

  await lastAssistant().locator(".actions .copy").click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), kMarkdown);
  await body.locator(".copy-code").click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), "print('<b>hi</b>')");
  await page.locator(".copy-code", { hasText: "Copied" }).waitFor();
  await page.screenshot({ path: path.join(artifactsDir, "copy.png") });
});

test("Regenerate asks again with the same conversation and replaces the answer", { skip }, async () => {
  await settings({ maxTokens: 6 });
  await page.click("#new-chat");
  let sent = page.waitForRequest((r) => r.url().endsWith("/v1/chat/completions"));
  await page.fill("#input", "Tell me a story");
  await page.click("#send");
  const first = (await sent).postDataJSON();
  await page.locator("#send:not([hidden])").waitFor();
  await lastAssistant().locator(".waterfall").waitFor();
  sent = page.waitForRequest((r) => r.url().endsWith("/v1/chat/completions"));
  await lastAssistant().locator(".regen").click();
  const again = (await sent).postDataJSON();
  await page.locator("#send:not([hidden])").waitFor();
  assert.deepEqual(again.messages, first.messages, "the old answer is not sent back");
  assert.equal(await page.locator(".msg.assistant").count(), 1, "the answer is replaced");
  assert.equal(await page.locator(".msg.user").count(), 1);
  await lastAssistant().locator(".waterfall").waitFor();
  assert.match(await lastAssistant().locator(".meta").textContent(), /6 completion tokens/);
  await page.screenshot({ path: path.join(artifactsDir, "regenerate.png") });
});

test("system prompt and sampling fields go into the request", { skip }, async () => {
  await settings({ maxTokens: 5, temperature: 0.5 });
  await page.fill("#system", "You are terse.");
  await page.fill("#top-p", "0.9");
  await page.fill("#seed", "42");
  await page.screenshot({ path: path.join(artifactsDir, "settings.png") });
  const sent = page.waitForRequest((r) => r.url().endsWith("/v1/chat/completions"));
  await page.fill("#input", "Hi");
  await page.click("#send");
  const body = (await sent).postDataJSON();
  await page.locator("#send:not([hidden])").waitFor();
  assert.deepEqual(body.messages[0], { role: "system", content: "You are terse." });
  assert.deepEqual(body.messages.at(-1), { role: "user", content: "Hi" });
  assert.equal(body.temperature, 0.5);
  assert.equal(body.top_p, 0.9);
  assert.equal(body.seed, 42);
  assert.equal(body.max_tokens, 5);
  assert.match(await lastAssistant().locator(".meta").textContent(), /5 completion tokens/);
  await page.fill("#system", "");
  await page.fill("#top-p", "1");
  await page.fill("#seed", "");
});

test("model details show context size, vision and architecture", { skip }, async () => {
  const meta = (await (await fetch(url + "/v1/models")).json()).data[0].meta;
  // Started without a context limit, the server serves the model's trained context.
  assert.ok(meta.n_ctx > 0 && meta.n_ctx === meta.n_ctx_train, JSON.stringify(meta));
  assert.equal(meta.vision, true, "the built-in test model has a vision tower");
  assert.ok(meta.arch && meta.projector, JSON.stringify(meta));
  const text = await page.locator("#model-info").textContent();
  assert.equal(text, `ctx ${meta.n_ctx.toLocaleString("en-US")} · vision (${meta.projector}) · ${meta.arch}`);
  await page.locator("header").screenshot({ path: path.join(artifactsDir, "model-details.png") });
});

test("conversations are saved in the browser, listed, and switched", { skip }, async () => {
  await settings({ maxTokens: 4 });
  const ask = async (question) => {
    const sent = page.waitForRequest((r) => r.url().endsWith("/v1/chat/completions"));
    await page.fill("#input", question);
    await page.click("#send");
    const body = (await sent).postDataJSON();
    await page.locator("#send:not([hidden])").waitFor();
    return body.messages;
  };
  await page.click("#new-chat");
  assert.equal(await page.locator(".msg").count(), 0, "a new chat starts empty");
  await ask("First chat question");
  await page.click("#new-chat");
  assert.equal(await page.locator(".msg").count(), 0);
  await ask("Second chat question");
  const titles = await page.locator("#chat-list .open").allTextContents();
  assert.deepEqual(titles.slice(0, 2), ["Second chat question", "First chat question"]);
  const stored = await page.evaluate(() => JSON.parse(localStorage.getItem("vlserve.chats")));
  const second = stored.find((c) => c.title === "Second chat question");
  assert.deepEqual(second.messages.map((m) => m.role), ["user", "assistant"]);

  // A reload shows the same conversation, answer stats and waterfall included.
  await page.reload();
  await settings({ maxTokens: 4 });
  assert.equal(await page.locator(".msg.user .body").textContent(), "Second chat question");
  await lastAssistant().locator(".waterfall").waitFor();
  assert.match(await lastAssistant().locator(".meta").textContent(), /4 completion tokens/);
  assert.equal(await page.locator("#chat-list li.current .open").textContent(), "Second chat question");

  await page.locator("#chat-list .open", { hasText: "First chat question" }).click();
  assert.deepEqual(await page.locator(".msg.user .body").allTextContents(), ["First chat question"]);
  const follow = await ask("A follow-up");
  assert.deepEqual(follow.map((m) => m.content), ["First chat question", follow[1].content, "A follow-up"]);
  await page.click("#settings summary");
  await page.screenshot({ path: path.join(artifactsDir, "conversations.png") });
});

test("the waterfall labels encoder and prefix cache hits", { skip }, async () => {
  await settings({ maxTokens: 4 });
  // A PNG no earlier test sent (random colour), made by the page's canvas.
  const png = await page.evaluate(() => {
    const c = document.createElement("canvas");
    c.width = 40; c.height = 28;
    const g = c.getContext("2d");
    g.fillStyle = `rgb(${Math.random() * 255 | 0},${Math.random() * 255 | 0},${Math.random() * 255 | 0})`;
    g.fillRect(0, 0, 40, 28);
    return c.toDataURL("image/png").split(",")[1];
  });
  const askWithImage = async () => {
    await page.click("#new-chat");
    await page.setInputFiles("#file", { name: "fresh.png", mimeType: "image/png", buffer: Buffer.from(png, "base64") });
    await page.locator("#attachments img").waitFor();
    const answer = page.waitForResponse((r) => r.url().endsWith("/v1/chat/completions"));
    await page.fill("#input", "Describe it.");
    await page.click("#send");
    const sse = await (await answer).text();
    await lastAssistant().locator(".waterfall").waitFor();
    const chunks = sse.split("\n").filter((l) => l.startsWith("data: {")).map((l) => JSON.parse(l.slice(6)));
    const names = await lastAssistant().locator(".waterfall .name").allTextContents();
    const row = (name) => lastAssistant().locator(".waterfall .track").nth(names.indexOf(name));
    return { timings: chunks.find((c) => c.timings).timings, usage: chunks.find((c) => c.usage).usage,
             tag: await row("encode").locator(".tag").allTextContents(),
             prefillTag: await row("prefill").locator(".tag").allTextContents() };
  };
  const fresh = await askWithImage();
  assert.equal(fresh.timings.images_cached, 0);
  assert.deepEqual(fresh.tag, [], "a new image is not labelled cached");
  const repeat = await askWithImage();
  assert.equal(repeat.timings.encode_cached, true, "the server served the image from its cache");
  assert.deepEqual(repeat.tag, ["cached"]);
  // The same prompt again: the prefix cache serves its first blocks.
  const cached = repeat.usage.prompt_tokens_details.cached_tokens;
  assert.ok(cached > 0, JSON.stringify(repeat.usage));
  assert.deepEqual(repeat.prefillTag, [`${cached} tokens cached`]);
  await lastAssistant().locator(".waterfall").screenshot({ path: path.join(artifactsDir, "cache-label.png") });
});

test("dark mode follows the system preference", { skip }, async () => {
  const background = () => page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  await page.emulateMedia({ colorScheme: "dark" });
  try {
    assert.equal(await background(), "rgb(22, 23, 27)");
    assert.equal(await lastAssistant().evaluate((b) => getComputedStyle(b).backgroundColor),
                 "rgb(31, 32, 38)");
    await page.screenshot({ path: path.join(artifactsDir, "dark.png") });
  } finally {
    await page.emulateMedia({ colorScheme: "light" });
  }
  assert.equal(await background(), "rgb(247, 247, 248)");
});

test("on a phone the message box has its own row", { skip }, async () => {
  await page.setViewportSize({ width: 390, height: 800 });
  await page.locator("#settings").evaluate((d) => { d.open = false; });
  try {
    const box = async (sel) => page.locator(sel).boundingBox();
    const inputBox = await box("#input"), send = await box("#send"), attach = await box(".attach");
    assert.ok(inputBox.width > 390 * 0.85, `the input spans the row (${inputBox.width}px)`);
    assert.ok(send.y >= inputBox.y + inputBox.height - 1 && attach.y >= inputBox.y + inputBox.height - 1,
              "the buttons sit below the input");
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
              "nothing overflows sideways");
    assert.equal(await page.locator("#chats").isVisible(), false, "the conversation list folds away");
    await page.screenshot({ path: path.join(artifactsDir, "mobile.png") });
    await page.click("#chats-toggle");
    assert.equal(await page.locator("#chats").isVisible(), true);
    await page.screenshot({ path: path.join(artifactsDir, "mobile-chats.png") });
    await page.mouse.click(380, 400);  // beside the list
    assert.equal(await page.locator("#chats").isVisible(), false, "a click beside it folds it");
  } finally {
    await page.setViewportSize({ width: 1100, height: 900 });
  }
});
