// The official OpenAI Node client against `vlserve serve` (default tiny noise model):
// non-streaming and streaming chat, image parts, errors, cancel-on-disconnect, logprobs
// and POST /v1/completions.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { serverUrl, kNoSpecialTokens, kPngDataUrl, eventually } from "./helpers.js";

let url, client, modelId;

before(async () => {
  url = await serverUrl();
  client = new OpenAI({ baseURL: url + "/v1", apiKey: "unused", maxRetries: 0, timeout: 30_000 });
  const models = await client.models.list();
  assert.equal(models.data.length, 1, "one served model");
  modelId = models.data[0].id;
  assert.ok(modelId.length > 0);
});

const greedy = (content, maxTokens) => ({
  model: modelId, messages: [{ role: "user", content }], max_tokens: maxTokens,
  temperature: 0, logit_bias: kNoSpecialTokens,
});

test("non-streaming chat returns text, usage and timings", async () => {
  const r = await client.chat.completions.create(greedy("Hello there", 8));
  assert.equal(r.object, "chat.completion");
  assert.equal(r.model, modelId);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, "assistant");
  assert.ok(r.choices[0].message.content.length > 0, "special tokens are banned: text is visible");
  // Nothing can end generation early (end tokens are banned), so it runs to max_tokens.
  assert.equal(r.choices[0].finish_reason, "length");
  assert.equal(r.usage.completion_tokens, 8);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 8);
  const t = r.timings;
  assert.ok(t, "vlserve adds a timings object");
  for (const k of ["parse", "tokenize", "prefill", "ttft", "decode", "total"]) {
    assert.equal(typeof t[k], "number", `timings.${k}`);
    assert.ok(t[k] >= 0, `timings.${k} >= 0`);
  }
  // Prefix caching may skip a cached head of the prompt (earlier tests share the template).
  const cached = r.usage.prompt_tokens_details?.cached_tokens ?? 0;
  assert.equal(t.prefill_tokens, r.usage.prompt_tokens - cached);
  assert.ok(t.ttft <= t.total && t.decode <= t.total);
});

test("streaming deltas concatenate to the greedy non-streaming answer", async () => {
  const body = greedy("Tell me a story", 12);
  const whole = await client.chat.completions.create(body);
  const stream = await client.chat.completions.create(
    { ...body, stream: true, stream_options: { include_usage: true } });
  let text = "", chunks = 0, finish = null, timings = null, usage = null, first = true;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, "chat.completion.chunk");
    if (chunk.usage) usage = chunk.usage;
    if (chunk.timings) timings = chunk.timings;
    const choice = chunk.choices[0];
    if (!choice) continue;
    if (first && choice.delta.content !== undefined) {
      assert.equal(choice.delta.role, "assistant", "the first delta carries the role");
      first = false;
    }
    text += choice.delta.content ?? "";
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  assert.ok(chunks >= 3, `several chunks (got ${chunks})`);
  assert.equal(text, whole.choices[0].message.content, "greedy decoding is deterministic");
  assert.equal(finish, "length");
  assert.equal(usage.completion_tokens, 12);
  assert.ok(timings && timings.ttft >= 0 && timings.decode_tokens >= 1, "final chunk has timings");
});

test("an image part is answered by the built-in vision tower, streamed too", async () => {
  const body = {
    model: modelId, max_tokens: 4, temperature: 0, logit_bias: kNoSpecialTokens,
    messages: [{ role: "user", content: [
      { type: "text", text: "What is in this image?" },
      { type: "image_url", image_url: { url: kPngDataUrl } },
    ] }],
  };
  const r = await client.chat.completions.create(body);
  assert.ok(r.choices[0].message.content.length > 0);
  assert.equal(r.timings.images, 1);
  assert.ok(r.timings.preprocess >= 0, "a new image is preprocessed");
  assert.ok(r.usage.prompt_tokens > 20, "image tokens are part of the prompt");
  // The same image again, streamed: served from the encoder cache, never decoded again.
  const stream = await client.chat.completions.create(
    { ...body, stream: true, stream_options: { include_usage: true } });
  let text = "", timings = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    if (chunk.timings) timings = chunk.timings;
  }
  assert.equal(text, r.choices[0].message.content, "greedy answer is the same");
  assert.equal(timings.encode_cached, true);
  assert.equal(timings.image_decode, undefined, "a cached image is not decoded");
});

test("malformed image data is a 400 that names the problem", async () => {
  await assert.rejects(
    client.chat.completions.create({
      model: modelId, max_tokens: 4,
      messages: [{ role: "user", content: [
        { type: "image_url", image_url: { url: "data:image/png;base64,bm90IGFuIGltYWdl" } }] }],
    }),
    (e) => e.status === 400 && /image|vision/i.test(e.message));
});

test("unknown model is a 404", async () => {
  await assert.rejects(client.chat.completions.create({ ...greedy("hi", 2), model: "no-such-model" }),
                       (e) => e instanceof OpenAI.NotFoundError);
});

async function metric(name) {
  const text = await (await fetch(url + "/metrics")).text();
  const m = text.match(new RegExp("^" + name + "\\s+(\\S+)", "m"));
  assert.ok(m, `/metrics has ${name}`);
  return Number(m[1]);
}

test("closing a stream mid-way frees the request and the server keeps serving", async () => {
  // The test model decodes thousands of tokens per second, so a whole 2048-token answer
  // takes well under a second: this checks the disconnect path is clean, not its speed.
  const ac = new AbortController();
  const r = await fetch(url + "/v1/chat/completions", {
    method: "POST", signal: ac.signal, headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...greedy("Go on forever", 100000), stream: true }),
  });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /^text\/event-stream/);
  const reader = r.body.getReader();
  const first = await reader.read();
  assert.ok(!first.done && first.value.length > 0);
  ac.abort();
  await eventually(async () => (await metric("vlserve_requests_running")) === 0, 5000,
                   "vlserve_requests_running to drop to 0 after the disconnect");
  const again = await client.chat.completions.create(greedy("Still there?", 3));
  assert.equal(again.usage.completion_tokens, 3);
});

test("chat logprobs: top alternatives, greedy = top-1, streamed = non-streamed", async () => {
  // No logit_bias here: logprobs are the model's raw distribution, so a banned token could
  // be the most likely one while greedy picks the best allowed one.
  const body = { model: modelId, messages: [{ role: "user", content: "Hello there" }],
                 max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 };
  const r = await client.chat.completions.create(body);
  const content = r.choices[0].logprobs.content;
  assert.ok(content.length <= 6, "one entry per token, the end token left out");
  assert.ok(content.length >= r.usage.completion_tokens - 1);
  for (const e of content) {
    assert.ok(e.logprob <= 0);
    assert.ok(Array.isArray(e.bytes));
    assert.equal(e.top_logprobs.length, 3);
    assert.equal(e.top_logprobs[0].token, e.token, "greedy picks the most likely token");
    for (let k = 1; k < 3; k++) assert.ok(e.top_logprobs[k - 1].logprob >= e.top_logprobs[k].logprob);
  }
  // With special tokens banned by logit_bias the chosen token is at most as likely as the
  // model's favourite (the bias does not change the reported distribution).
  const biased = await client.chat.completions.create(
    { ...greedy("Hello there", 6), logprobs: true, top_logprobs: 1 });
  for (const e of biased.choices[0].logprobs.content) {
    assert.ok(e.logprob <= e.top_logprobs[0].logprob);
  }
  const stream = await client.chat.completions.create({ ...body, stream: true });
  const streamed = [];
  for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
  assert.deepEqual(streamed, content);
  await assert.rejects(client.chat.completions.create({ ...greedy("hi", 2), top_logprobs: 2 }),
                       (e) => e.status === 400 && /logprobs/.test(e.message));
});

test("completions: text and token-id prompts, echo, legacy logprobs, streaming", async () => {
  const base = { model: modelId, max_tokens: 5, temperature: 0, logit_bias: kNoSpecialTokens };
  const r = await client.completions.create({ ...base, prompt: "Once upon a time" });
  assert.equal(r.object, "text_completion");
  assert.equal(r.choices[0].finish_reason, "length");
  assert.ok(r.choices[0].text.length > 0);
  assert.equal(r.usage.completion_tokens, 5);
  const ids = (await (await fetch(url + "/tokenize", {
    method: "POST", body: JSON.stringify({ content: "Once upon a time", add_special: true }),
  })).json()).tokens;
  const byIds = await client.completions.create({ ...base, prompt: ids });
  assert.equal(byIds.choices[0].text, r.choices[0].text);
  const echo = await client.completions.create({ ...base, prompt: "Once upon a time", echo: true });
  assert.equal(echo.choices[0].text, "Once upon a time" + r.choices[0].text);
  const lp = await client.completions.create({ ...base, prompt: "Once upon a time", logprobs: 2 });
  const l = lp.choices[0].logprobs;
  assert.equal(l.tokens.length, 5);
  if (!l.tokens.some((t) => t.includes("\\x"))) {  // no token splits a UTF-8 character
    assert.equal(l.tokens.join(""), r.choices[0].text);
  }
  assert.equal(l.text_offset[0], 0);
  // Raw model distribution: a token chosen under logit_bias is at most the favourite.
  l.token_logprobs.forEach((v, i) => assert.ok(v <= Math.max(...Object.values(l.top_logprobs[i]))));
  const stream = await client.completions.create({ ...base, prompt: "Once upon a time", stream: true });
  let text = "", finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, "text_completion");
    text += chunk.choices[0]?.text ?? "";
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, r.choices[0].text);
  assert.equal(finish, "length");
  await assert.rejects(client.completions.create({ ...base, prompt: ["a", "b"] }),
                       (e) => e.status === 400 && /one prompt/.test(e.message));
});
