#!/usr/bin/python3
"""Trains vlserve's demo VLM from scratch on the synthetic tasks (tasks.py), CPU only, and
exports it as text.gguf + mmproj.gguf (model.py).

usage: tools/demo/train.py --vlserve build/vlserve --out models/demo [--steps 4000]
           [--batch 32] [--seed 0] [--threads 2]
       tools/demo/train.py --vlserve build/vlserve --out DIR --check
           (no training: export the initial weights and compare PyTorch's prompt logits with
           `vlserve generate --logits-out` on one image, both image orders; a format check)

The tokenizer and chat template are vlserve's built-in test vocabulary (the SmolVLM one that
`vlserve make-test-model` writes), tokenized here by the independent byte-level BPE of
tools/reference/vision_reference.py. Training runs in bfloat16 autocast (oneDNN; Debian's
PyTorch has no fast float32 BLAS), with float32 master weights. Writes, besides the GGUFs,
DIR/train_log.csv (step, seconds, loss per task) and DIR/loss.svg.
"""
import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

import tasks  # noqa: E402
from gguf_min import Reader  # noqa: E402
from model import Config, DemoVlm, export  # noqa: E402
from vision_reference import Bpe  # noqa: E402

NAME = "vlserve-demo-vlm"
# Auxiliary classes of an image token's cell: "nothing" (0), every character the tasks
# draw, and with --shape-aux every colour and shape (the token holding a shape's centre).
AUX_CHARS = sorted(set(tasks.LOWER + tasks.UPPER + tasks.DIGITS + ":"))
AUX_SHAPES = [(c, s) for c in tasks.COLOURS for s in tasks.SHAPES]


def aux_index(shapes):
    return {k: i + 1 for i, k in enumerate(AUX_CHARS + (AUX_SHAPES if shapes else []))}
AUX_WEIGHT = 0.5     # of the auxiliary loss against the answer loss
AUX_NONE_WEIGHT = 0.1  # of the "no character" class (most cells)
# Guided attention (see guides()): the weight of each supervised head's loss.
GUIDE_WEIGHTS = {"count": 0.2, "anchor": 0.5, "read": 0.5}


def load_vocab(vlserve, workdir):
    subprocess.run([vlserve, "make-test-model", "--vision", "idefics3", "-o", workdir],
                   check=True, stdout=subprocess.DEVNULL)
    r = Reader(os.path.join(workdir, "text.gguf"))
    m = r.meta
    vocab = {
        "tokens": m["tokenizer.ggml.tokens"], "token_type": m["tokenizer.ggml.token_type"],
        "merges": m["tokenizer.ggml.merges"], "bos": m["tokenizer.ggml.bos_token_id"],
        "eos": m["tokenizer.ggml.eos_token_id"], "pad": m["tokenizer.ggml.padding_token_id"],
        "pre": m["tokenizer.ggml.pre"], "chat_template": m["tokenizer.chat_template"],
    }
    return vocab, Bpe(r)


class Formatter:
    """The SmolVLM chat format vlserve renders for one user turn with one image."""

    def __init__(self, bpe, tokens_per_image):
        self.bpe = bpe
        self.n = tokens_per_image
        self.image_id = bpe.ids["<image>"]
        self.end_id = bpe.ids["<end_of_utterance>"]
        self.pieces = {}

    # Where the image goes: 0 = before the question as HF's template writes it ("User:" +
    # image), 1 = after the question ("User: " + question + image), 2 = before the question
    # after "User: " as llama.cpp's built-in smolvlm format writes it, 3 = that with the
    # picture twice, as llama.cpp's idefics3 preprocessing sends a one-tile image (a 1x1
    # grid tile, then the global image).
    VARIANT_WEIGHTS = [0.35, 0.35, 0.1, 0.2]

    def prompt(self, question, variant):
        img = "<fake_token_around_image><global-img>" + "<image>" * self.n + \
            "<fake_token_around_image>"
        tile = "<fake_token_around_image><row_1_col_1>" + "<image>" * self.n + "\n\n"
        body = [f"User:{img}{question}", f"User: {question}{img}",
                f"User: {img}{question}", f"User: {tile}{img}{question}"][variant]
        return self.bpe.encode(f"<|im_start|>{body}<end_of_utterance>\nAssistant:")

    def piece(self, tid):
        """The text of one token (byte-level BPE: GPT-2 byte characters mapped back)."""
        if tid not in self.pieces:
            rev = {ch: b for b, ch in self.bpe.byte_map.items()}
            raw = bytes(rev.get(ch, 63) for ch in self.bpe.tokens[tid])
            self.pieces[tid] = raw.decode("utf-8", "replace")
        return self.pieces[tid]

    def variant(self, rng):
        return rng.choices(range(len(self.VARIANT_WEIGHTS)), weights=self.VARIANT_WEIGHTS)[0]

    def example(self, question, answer, variant, spell):
        """Prompt and answer token ids. A spelled answer (read, kv) is one token per
        character after the space, so that answer token k is the text's k-th character; the
        decoded text is the same as BPE's."""
        p = self.prompt(question, variant)
        if spell:
            a = [self.bpe.ids["\u0120"]] + [self.bpe.ids[ch] for ch in answer]
        else:
            a = self.bpe.encode(" " + answer)
        return p, a + [self.end_id]


def pixels_of(img):
    a = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(((a - 0.5) / 0.5).transpose(2, 0, 1).copy())


def token_of(cell_col, line, c):
    """The image token (row-major on the token grid) holding a text cell."""
    per_row = c.image_size // c.patch // c.scale
    return line * per_row + cell_col * tasks.CELL // (c.patch * c.scale)


def cell_labels(img, c, index):
    """[tokens, 2] class of the left and the right cell of each image token: the character
    set there, or (both cells) the colour and shape centred in the token."""
    per_row = c.image_size // c.patch // c.scale
    lab = torch.zeros(per_row * per_row, 2, dtype=torch.long)
    for ch, col, line in img.info.get("cells", []):
        lab[token_of(col, line, c), col % 2] = index[ch]
    side = c.patch * c.scale
    for colour, shape, x, y in img.info.get("shapes", []):
        if (colour, shape) in index:
            lab[int(y) // side * per_row + int(x) // side, :] = index[(colour, shape)]
    return lab


def guides(img, prompt, answer, c, n_image):
    """Where three heads should look while the answer is written (training only: it teaches
    a 4-layer decoder to read in order far sooner than the answer loss alone does; the
    exported model has no trace of it). Head 0 of
      layer 0 ("count"):  every position from the prompt's last token to itself, evenly
                          (a uniform average there tells the decoder how far it has come);
      layer 1 ("anchor"): the image token where reading starts (the word's first cell, or
                          the asked city's);
      last layer ("read"): the image token holding the character it is about to write
                          (for the closing token: the cell after the last character).
    Returns {name: [(query position, key positions)]}."""
    start = len(prompt) - 1
    queries = range(start, start + len(answer))
    out = {"count": [(q, list(range(start, q + 1))) for q in queries], "anchor": [], "read": []}
    cells = img.info.get("answer_cells")
    if not cells:
        return out
    first = prompt.index(n_image)
    col, line = img.info["anchor"]
    out["anchor"] = [(q, [first + token_of(col, line, c)]) for q in queries]
    for k, q in enumerate(queries):
        i = max(k - 1, 0)  # answer token 0 is the space before the first character
        if i < len(cells):
            _, cc, cl = cells[i]
        else:
            _, cc, cl = cells[-1]
            cc += 1
            if cc * tasks.CELL >= c.image_size:
                continue
        out["read"].append((q, [first + token_of(cc, cl, c)]))
    return out


def make_batch(rng, fmt, batch, pad_id, task=None, c=None, mix=tasks.MIX, index=None):
    px, seqs, info, labels, guide_rows = [], [], [], [], []
    for _ in range(batch):
        img, q, a, t = tasks.sample(rng, task, mix)
        p, ans = fmt.example(q, a, fmt.variant(rng), spell=t != "scene")
        px.append(pixels_of(img))
        if c is not None:
            labels.append(cell_labels(img, c, index))
            guide_rows.append(guides(img, p, ans, c, fmt.image_id))
        seqs.append((p, ans))
        info.append((t, a))
    T = max(len(p) + len(a) for p, a in seqs)
    tok = torch.full((batch, T), pad_id, dtype=torch.long)
    target = torch.full((batch, T), -100, dtype=torch.long)
    for i, (p, a) in enumerate(seqs):
        s = p + a
        tok[i, :len(s)] = torch.tensor(s)
        # position j predicts token j + 1: the answer tokens and the closing token
        target[i, len(p) - 1:len(s) - 1] = torch.tensor(a)
    aux = torch.stack(labels) if labels else None
    # Per guided head: a target distribution over key positions for each query position.
    gt = {}
    for name in GUIDE_WEIGHTS:
        dist = torch.zeros(batch, T, T)
        for i, g in enumerate(guide_rows):
            for q, keys in g[name]:
                dist[i, q, keys] = 1.0 / len(keys)
        gt[name] = dist
    return torch.stack(px), tok, target, info, (aux, gt)


def forward(model, px, tok, fmt, with_aux=False):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if with_aux:
            logits, aux, probs = model(px, tok, tok == fmt.image_id, with_aux=True)
            return logits.float(), aux.float(), [p.float() for p in probs]
        return model(px, tok, tok == fmt.image_id).float()


@torch.no_grad()
def greedy(model, fmt, img, question, variant, max_new=32):
    seq = fmt.prompt(question, variant)
    px = pixels_of(img)[None]
    out = []
    for _ in range(max_new):
        tok = torch.tensor([seq])
        nxt = int(forward(model, px, tok, fmt)[0, -1].argmax())
        if nxt == fmt.end_id:
            break
        out.append(nxt)
        seq.append(nxt)
    return out


def quick_eval(model, fmt, bpe, seed, per_task=16):
    inv = {i: s for s, i in bpe.ids.items()}
    rng = random.Random(seed)
    acc = {}
    for t in tasks.TASKS:
        ok = 0
        for _ in range(per_task):
            img, q, a, _ = tasks.sample(rng, t)
            ids = greedy(model, fmt, img, q, fmt.variant(rng))
            text = bytes(bpe_decode(bpe, ids, inv)).decode("utf-8", "replace").strip()
            ok += text == a
        acc[t] = ok / per_task
    return acc


def bpe_decode(bpe, ids, inv):
    rev = {c: b for b, c in bpe.byte_map.items()}
    out = []
    for i in ids:
        for ch in inv[i]:
            out.append(rev.get(ch, 63))
    return out


def loss_svg(rows, path):
    """A small hand-written SVG of the training loss (per task and overall) against step."""
    W, H, L, B = 640, 320, 50, 30
    steps = [r["step"] for r in rows]
    series = {"all": "#222", "read": "#d62728", "scene": "#2ca02c", "kv": "#1f77b4"}
    vals = [max(r[k], 1e-3) for r in rows for k in series if r[k] == r[k]]
    lo, hi = np.log10(min(vals)), np.log10(max(vals))
    xmax = max(steps)

    def xy(s, v):
        x = L + (W - L - 10) * s / xmax
        y = 10 + (H - B - 10) * (hi - np.log10(max(v, 1e-3))) / max(hi - lo, 1e-6)
        return f"{x:.1f},{y:.1f}"
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<line x1="{L}" y1="{H - B}" x2="{W - 10}" y2="{H - B}" stroke="#888"/>',
             f'<line x1="{L}" y1="10" x2="{L}" y2="{H - B}" stroke="#888"/>']
    for e in range(int(np.floor(lo)), int(np.ceil(hi)) + 1):
        if lo - 1e-9 <= e <= hi + 1e-9:
            y = xy(0, 10.0 ** e).split(",")[1]
            parts.append(f'<text x="{L - 5}" y="{y}" text-anchor="end">1e{e}</text>')
    for s in (0, xmax // 2, xmax):
        parts.append(f'<text x="{xy(s, 10 ** hi).split(",")[0]}" y="{H - B + 15}" '
                     f'text-anchor="middle">{s}</text>')
    parts.append(f'<text x="{W // 2}" y="{H - 3}" text-anchor="middle">training step '
                 f'(cross-entropy per answer token, log scale)</text>')
    for i, (k, colour) in enumerate(series.items()):
        pts = " ".join(xy(r["step"], r[k]) for r in rows if r[k] == r[k])
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>')
        parts.append(f'<text x="{W - 80}" y="{24 + 14 * i}" fill="{colour}">{k}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def check(model, fmt, vlserve, out):
    """PyTorch prompt logits vs `vlserve generate --logits-out` on the exported files."""
    rng = random.Random(7)
    img, q, _, _ = tasks.sample(rng, "kv")
    path = os.path.join(out, "check.png")
    img.save(path)
    worst = 0.0
    for variant in (0, 1):
        prompt = q if variant == 0 else q + "<image>"
        lf = os.path.join(out, "check_logits.bin")
        subprocess.run([vlserve, "generate", "-m", os.path.join(out, "text.gguf"), "--mmproj",
                        os.path.join(out, "mmproj.gguf"), "--image", path, "-p", prompt,
                        "--temp", "0", "-n", "1", "--logits-out", lf], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ours = np.fromfile(lf, dtype=np.float32).reshape(-1, model.c.vocab)
        seq = fmt.prompt(q, variant)
        with torch.no_grad():
            ref = model(pixels_of(img)[None], torch.tensor([seq]),
                        torch.tensor([seq]) == fmt.image_id)[0].numpy()
        assert ours.shape == ref.shape, (ours.shape, ref.shape, "prompt lengths differ")
        err = np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-6)
        print(f"check variant {variant}: {len(seq)} prompt tokens, max |diff| / max "
              f"|logit| = {err:.2e}, same argmax at {np.mean(ours.argmax(1) == ref.argmax(1)):.3f}")
        worst = max(worst, err)
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vlserve", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--shape-aux", action="store_true",
                    help="the auxiliary head also names the colour and shape centred in a token")
    ap.add_argument("--render-share", type=float, default=0.0,
                    help="share of texts whose glyphs come from `vlserve render` (tasks.py)")
    ap.add_argument("--mix", default=",".join(map(str, tasks.MIX)),
                    help="how often each task is drawn: read,scene,kv")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--resume", help="continue from DIR/checkpoint.pt of an earlier run "
                    "(fresh optimizer and schedule; steps are numbered after that run's, "
                    "whose train_log.csv is kept)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tasks.RENDERER = args.vlserve
    tasks.RENDER_SHARE = args.render_share
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    c = Config()
    with tempfile.TemporaryDirectory() as tmp:
        vocab, bpe = load_vocab(args.vlserve, tmp)
    assert len(vocab["tokens"]) == c.vocab
    fmt = Formatter(bpe, c.tokens_per_image)
    index = aux_index(args.shape_aux)
    n_aux = len(index) + 1
    model = DemoVlm(c, aux_classes=n_aux)
    text_path, mmproj_path = (os.path.join(args.out, n) for n in ("text.gguf", "mmproj.gguf"))
    first_step, rows = 0, []
    if args.resume:
        state = torch.load(os.path.join(args.resume, "checkpoint.pt"))
        # The auxiliary head (training only) starts afresh if its classes changed.
        if state["aux.weight"].shape != model.aux.weight.shape:
            state = {k: v for k, v in state.items() if not k.startswith("aux.")}
        missing = model.load_state_dict(state, strict=False).missing_keys
        assert all(k.startswith("aux.") for k in missing), missing
        with open(os.path.join(args.resume, "train_log.csv")) as f:
            for r in csv.DictReader(f):
                rows.append({k: float(v) for k, v in r.items()})
                rows[-1]["step"] = int(rows[-1]["step"])
        first_step = rows[-1]["step"] if rows else 0
    if args.check:
        export(model, vocab, NAME, text_path, mmproj_path)
        worst = check(model, fmt, args.vlserve, args.out)
        sys.exit(0 if worst < 2e-2 else 1)

    rng = random.Random(args.seed)
    mix = [float(x) for x in args.mix.split(",")]
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "pos" in n else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98))
    warm = 200

    def lr_at(s):
        if s < warm:
            return args.lr * (s + 1) / warm
        f = (s - warm) / max(1, args.steps - warm)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * f)))

    aux_class_weight = torch.ones(n_aux)
    aux_class_weight[0] = AUX_NONE_WEIGHT
    window = {k: [] for k in ("all", "read", "scene", "kv", "aux", "guide", "g_count",
                              "g_anchor", "g_read")}
    t0 = time.time()
    old_rows = list(rows)
    log = open(os.path.join(args.out, "train_log.csv"), "w", newline="")
    writer = csv.writer(log)
    cols = ["step", "seconds", "lr", "all", "read", "scene", "kv", "aux", "guide", "g_count",
            "g_anchor", "g_read"]
    writer.writerow(cols)
    for r in old_rows:
        writer.writerow([r.get(k, float("nan")) for k in cols])
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        px, tok, target, info, (aux_target, guide) = make_batch(
            rng, fmt, args.batch, vocab["pad"], c=c, mix=mix, index=index)
        logits, aux_logits, probs = forward(model, px, tok, fmt, with_aux=True)
        aux_loss = torch.nn.functional.cross_entropy(
            aux_logits.reshape(-1, n_aux), aux_target.reshape(-1),
            weight=aux_class_weight)
        guide_loss = torch.zeros(())
        for name, layer in (("count", 0), ("anchor", 1), ("read", c.layers - 1)):
            dist = guide[name]
            qr = dist.sum(-1) > 0
            if qr.any():
                ce = -(dist[qr] * torch.log(probs[layer][qr] + 1e-6)).sum(-1).mean()
                guide_loss = guide_loss + GUIDE_WEIGHTS[name] * ce
                window["g_" + name].append(float(ce))
        per_tok = torch.nn.functional.cross_entropy(
            logits.reshape(-1, c.vocab), target.reshape(-1), reduction="none").view(target.shape)
        valid = (target != -100).float()
        per_sample = (per_tok * valid).sum(1) / valid.sum(1)
        loss = (per_tok * valid).sum() / valid.sum()
        opt.zero_grad(set_to_none=True)
        (loss + AUX_WEIGHT * aux_loss + guide_loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        window["all"].append(float(loss))
        window["aux"].append(float(aux_loss))
        window["guide"].append(float(guide_loss))
        for (t, _), l in zip(info, per_sample.tolist()):
            window[t].append(l)
        if (step + 1) % 50 == 0 or step + 1 == args.steps:
            row = {"step": first_step + step + 1, "seconds": round(time.time() - t0, 1),
                   "lr": lr_at(step)}
            for k, v in window.items():
                row[k] = float(np.mean(v)) if v else float("nan")
                v.clear()
            rows.append(row)
            writer.writerow([row[k] for k in cols])
            log.flush()
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                              for k, v in row.items()}), flush=True)
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            model.eval()
            acc = quick_eval(model, fmt, bpe, 10_000 + step)
            model.train()
            print(json.dumps({"step": first_step + step + 1, "quick_eval": acc}), flush=True)
            torch.save(model.state_dict(), os.path.join(args.out, "checkpoint.pt"))
            export(model, vocab, NAME, text_path, mmproj_path)
    log.close()
    loss_svg(rows, os.path.join(args.out, "loss.svg"))
    export(model, vocab, NAME, text_path, mmproj_path)
    print(f"trained {args.steps} steps in {time.time() - t0:.0f} s; wrote {text_path}, "
          f"{mmproj_path}")


if __name__ == "__main__":
    main()
