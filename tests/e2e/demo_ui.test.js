// The web UI on the trained demo model (models/demo), in headless Chromium: a user attaches
// one of the README's pictures, asks the README's question, and reads the right answer in
// the chat. Screenshots (artifacts/demo-*.png) are the docs' pictures of the UI. Skipped
// when no Chromium is installed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { demoServerUrl, demoModelDir, demoPicturesDir, artifactsDir, chromiumPath,
  chromiumSkip } from "./helpers.js";

const executablePath = chromiumPath;
const skip = chromiumSkip || (fs.existsSync(path.join(demoModelDir, "text.gguf")) ? false
  : "models/demo/text.gguf is absent (tools/demo/train.py writes it; docs/demo-model.md)");

let browser, page, url;

before(async () => {
  if (skip) return;
  url = await demoServerUrl();
  fs.mkdirSync(artifactsDir, { recursive: true });
  browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1000, height: 760 } });
  page.on("pageerror", (e) => { throw e; });
  await page.goto(url + "/");
  await page.locator("#health.ok").waitFor({ timeout: 20_000 });
  const details = page.locator("#settings");
  if (!(await details.evaluate((d) => d.open))) await page.click("#settings summary");
  await page.fill("#temperature", "0");
  await page.fill("#max-tokens", "32");
  await page.click("#settings summary");
});

after(async () => { await browser?.close(); });

// One question per conversation: the model was trained on single turns.
async function ask(picture, question) {
  await page.click("#new-chat");
  await page.setInputFiles("#file", path.join(demoPicturesDir, picture));
  await page.locator("#attachments img").waitFor();
  await page.fill("#input", question);
  await page.press("#input", "Enter");
  await page.locator("#send:not([hidden])").waitFor({ timeout: 30_000 });
  const bubble = page.locator(".msg.assistant").last();
  assert.equal(await bubble.evaluate((b) => b.classList.contains("error")), false);
  return (await bubble.locator(".body").textContent()).trim();
}

test("the demo model reads the key-value page", { skip }, async () => {
  assert.equal(await ask("demo-page.png", "What is the code for Oslo?"), "K7P2");
  await page.screenshot({ path: path.join(artifactsDir, "demo-page-answer.png") });
});

test("the demo model describes the shapes", { skip }, async () => {
  assert.equal(await ask("demo-shapes.png", "Describe the picture."),
               "Two red circles and a blue square");
  await page.screenshot({ path: path.join(artifactsDir, "demo-chat.png") });
});

test("the demo model reads a word", { skip }, async () => {
  assert.equal(await ask("demo-word.png", "What does the image say?"), "Hello");
});
