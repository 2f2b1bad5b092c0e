// The web UI in headless Chromium (playwright-core drives the system browser; nothing is
// downloaded): model id and health, image attach + preview, streamed text, Stop, and the
// latency waterfall. Skipped when no Chromium is installed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { serverUrl, kNoSpecialTokens, kPngBase64, artifactsDir } from "./helpers.js";

const executablePath = (process.env.CHROMIUM ? [process.env.CHROMIUM]
  : ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"])
  .find((p) => fs.existsSync(p));
const skip = executablePath ? false : "no Chromium found (apt-get install -y chromium, " +
  "or scripts/install-deps.sh --browser; or set CHROMIUM=/path/to/chrome)";

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
