#!/usr/bin/python3
"""Held-out accuracy of the demo VLM, through `vlserve serve` over HTTP (and llama.cpp).

usage: tools/demo/evaluate.py --vlserve build/vlserve [--model-dir models/demo]
           [--per-task 100] [--seed 20261206] [--concurrency 16] [--stream]
           [--server-args "--no-prefix-cache --encoder-cache-mb 0"] [--json OUT]
       tools/demo/evaluate.py --url http://127.0.0.1:8080 ...      (a running server)
       tools/demo/evaluate.py ... --llama-mtmd-cli PATH             (also llama.cpp, greedy,
           on the same files and images; prints its accuracy and how often it agrees)

The held-out set comes from tasks.py with a seed the training never uses (training draws
from --seed 0's stream; quick evaluations during training use 10000 + step); half of its
texts (--render-share) are drawn with glyphs from `vlserve render` (build/vlserve, or
--vlserve), the rest with Pillow's. Each sample
is a PNG sent as a data: URL in an OpenAI chat request (temperature 0), the question first
or the image first at random. Exact match after stripping surrounding spaces.
"""
import argparse
import base64
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tasks  # noqa: E402

DEFAULT_MODEL_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "models", "demo"))


def held_out(seed, per_task, render_share=0.5):
    """[(task, png bytes, question, answer, image_first)], per_task of each task."""
    tasks.RENDER_SHARE = render_share
    rng = random.Random(seed)
    out = []
    for t in tasks.TASKS:
        for _ in range(per_task):
            img, q, a, _ = tasks.sample(rng, t)
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            out.append((t, buf.getvalue(), q, a, rng.random() < 0.5))
    return out


def chat_body(png, question, image_first, stream=False, max_tokens=32):
    image = {"type": "image_url",
             "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}}
    text = {"type": "text", "text": question}
    body = {"messages": [{"role": "user", "content": [image, text] if image_first
                          else [text, image]}],
            "temperature": 0, "max_tokens": max_tokens}
    if stream:
        body["stream"] = True
    return body


def ask(url, png, question, image_first, stream=False, timeout=120):
    data = json.dumps(chat_body(png, question, image_first, stream)).encode()
    req = urllib.request.Request(url + "/v1/chat/completions", data=data,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        if not stream:
            return json.loads(r.read())["choices"][0]["message"]["content"]
        parts = []
        for line in r:
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"][0].get("delta", {})
            parts.append(delta.get("content") or "")
        return "".join(parts)


def run_set(url, samples, concurrency=16, stream=False):
    """Returns ({task: exact-match rate}, [answers])."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = list(pool.map(lambda s: ask(url, s[1], s[2], s[4], stream), samples))
    return score(samples, answers), answers


def score(samples, answers):
    acc = {}
    for (t, _, _, a, _), got in zip(samples, answers):
        ok, n = acc.get(t, (0, 0))
        acc[t] = (ok + (got is not None and got.strip() == a), n + 1)
    return {t: ok / n for t, (ok, n) in acc.items()}


class Server:
    """`vlserve serve` on a free loopback port, stopped on exit."""

    def __init__(self, vlserve, model_dir, extra=()):
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        cmd = [vlserve, "serve", "--host", "127.0.0.1", "--port", "0",
               "-m", os.path.join(model_dir, "text.gguf"),
               "--mmproj", os.path.join(model_dir, "mmproj.gguf"), *extra]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = None
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("vlserve exited during start-up:\n" + self.text())
            m = re.search(r"listening on (http://[0-9.:]+)", self.text())
            if m:
                try:
                    with urllib.request.urlopen(m.group(1) + "/health", timeout=2) as r:
                        if r.status == 200:
                            self.url = m.group(1)
                            return
                except OSError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("vlserve did not become healthy in 60 s:\n" + self.text())

    def text(self):
        with open(self.log.name) as f:
            return f.read()

    def metric(self, name):
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            m = re.search(rf"^{name} ([0-9.e+]+)$", r.read().decode(), re.M)
        return float(m.group(1)) if m else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        os.unlink(self.log.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def llama_cpp(cli, model_dir, samples, timeout=120):
    """llama-mtmd-cli's greedy answers for the same images and questions."""
    answers = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (_, png, q, _, _) in enumerate(samples):
            path = os.path.join(tmp, f"{i}.png")
            with open(path, "wb") as f:
                f.write(png)
            # mtmd-cli puts the image before the text (its default, and the layout training
            # includes: "User: " + the picture twice + the question); vlserve's answer for
            # the same picture and question is what it is compared with.
            prompt = q
            r = subprocess.run([cli, "-m", os.path.join(model_dir, "text.gguf"), "--mmproj",
                                os.path.join(model_dir, "mmproj.gguf"), "--image", path,
                                "-p", prompt, "--temp", "0", "-n", "32", "--no-warmup"],
                               capture_output=True, text=True, timeout=timeout)
            answers.append(r.stdout.strip() if r.returncode == 0 else None)
    return answers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vlserve")
    ap.add_argument("--url")
    ap.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    ap.add_argument("--per-task", type=int, default=100)
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--server-args", default="")
    ap.add_argument("--llama-mtmd-cli")
    ap.add_argument("--render-share", type=float, default=0.5)
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.vlserve:
        tasks.RENDERER = args.vlserve
    samples = held_out(args.seed, args.per_task, args.render_share)
    result = {"seed": args.seed, "per_task": args.per_task}
    t0 = time.time()
    if args.url:
        acc, answers = run_set(args.url, samples, args.concurrency, args.stream)
    else:
        with Server(args.vlserve, args.model_dir, args.server_args.split()) as s:
            acc, answers = run_set(s.url, samples, args.concurrency, args.stream)
    result["vlserve"] = acc
    result["vlserve_seconds"] = round(time.time() - t0, 1)
    print("vlserve exact match:", json.dumps(acc))
    wrong = [(s[0], s[2], s[3], a) for s, a in zip(samples, answers) if a.strip() != s[3]]
    for w in wrong[:10]:
        print("  wrong:", w)
    if args.llama_mtmd_cli:
        ll = llama_cpp(args.llama_mtmd_cli, args.model_dir, samples)
        result["llama_cpp"] = score(samples, ll)
        same = sum(a is not None and a.strip() == b.strip() for a, b in zip(ll, answers))
        result["llama_cpp_same_answer"] = same / len(samples)
        print("llama.cpp exact match:", json.dumps(result["llama_cpp"]),
              f"same answer as vlserve: {same}/{len(samples)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
