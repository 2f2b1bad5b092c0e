// Shared by the e2e tests: where the server is, and small fixtures.
//
// run.sh starts `vlserve serve` (default tiny noise model) and exports VLSERVE_URL. Run
// alone (`node --test` in this folder), each test file starts its own server from
// VLSERVE_BIN (default ../../build/vlserve) on a free loopback port.
import { spawn } from "node:child_process";
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));

// Token ids 0..42 of the built-in test vocabulary are end-of-generation and control tokens
// that print nothing; banning them makes the noise model always produce visible text.
export const kNoSpecialTokens = Object.fromEntries(
  Array.from({ length: 43 }, (_, id) => [String(id), -100]));

// A 48x32 PNG (blue background, yellow box, red disc), made with PIL.
export const kPngBase64 =
  "iVBORw0KGgoAAAANSUhEUgAAADAAAAAgCAIAAADbtmxLAAAAiklEQVR42mOUizrBMJgAE8MgA6MOGnUQpYAFl8SdvARa" +
  "260yacFolA3nNEQ8eISa2OQWDGgIPUogLEI/B+GymxI3MVHdNRS6iYkWrqHETaPZftRBA+QgYko/8kpI8kMIv31kl9cU" +
  "RRkuWympPShNQ5h2U1iXUaFypdAFo9l+qDuIcbQrPeqg4eYgAFJ0GIOlL//CAAAAAElFTkSuQmCC";
export const kPngDataUrl = "data:image/png;base64," + kPngBase64;

export const artifactsDir = path.join(here, "artifacts");

// The system Chromium the browser tests drive (playwright-core downloads nothing), and the
// skip reason when there is none.
export const chromiumPath = (process.env.CHROMIUM ? [process.env.CHROMIUM]
  : ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"])
  .find((p) => fs.existsSync(p));
export const chromiumSkip = chromiumPath ? false : "no Chromium found (apt-get install -y " +
  "chromium, or scripts/install-deps.sh --browser; or set CHROMIUM=/path/to/chrome)";

let started = null;

// Base URL of a ready server (GET /health == 200).
export async function serverUrl() {
  if (process.env.VLSERVE_URL) return process.env.VLSERVE_URL.replace(/\/$/, "");
  if (!started) started = startServer();
  return (await started).url;
}

// The trained demo model (models/demo, docs/demo-model.md) and its README pictures.
export const demoModelDir = path.join(here, "../../models/demo");
export const demoPicturesDir = path.join(here, "../../docs/img");

// A server of its own on the trained demo model: its answers have meaning.
export async function demoServerUrl() {
  const m = path.join(demoModelDir, "text.gguf");
  const mmproj = path.join(demoModelDir, "mmproj.gguf");
  return (await startServer(["-m", m, "--mmproj", mmproj, "-a", "vlserve-demo"])).url;
}

async function startServer(extraArgs = []) {
  const bin = process.env.VLSERVE_BIN || path.join(here, "../../build/vlserve");
  const child = spawn(bin, ["serve", "--host", "127.0.0.1", "--port", "0", ...extraArgs],
                      { stdio: ["ignore", "pipe", "pipe"] });
  process.on("exit", () => child.kill("SIGTERM"));
  let out = "";
  const url = await new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`${bin} exited with ${code}:\n${out}`)));
    const onData = (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^\s]+)/);  // logged with the bound port
      if (m) resolve(m[1]);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
  });
  await waitHealthy(url, 60_000);
  // Keep draining its logs, but let the test process exit when its tests are done.
  child.unref();
  child.stdout.unref();
  child.stderr.unref();
  return { url, child };
}

export async function waitHealthy(url, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url + "/health")).status === 200) return;
    } catch (e) { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`${url}/health did not return 200 in time`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Polls fn() until it returns a truthy value or timeoutMs passes.
export async function eventually(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}
