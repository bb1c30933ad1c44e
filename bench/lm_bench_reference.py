#!/usr/bin/python3
"""The Python side of bench/lm_bench: the same decoder-only models written in
plain python3-torch (Debian's torch 1.13), with random weights, timed the same
way. lm_bench runs it as a subprocess in the same run and compares.

    /usr/bin/python3 bench/lm_bench_reference.py --threads 2 --config '<json>'

The config is a JSON list of cases, each
    {"name", "arch": "gpt2"|"llama", "layers", "d_model", "heads", "vocab",
     "ctx", "batch", "d_mlp", "warmup", "iters", "min_seconds"}
and for each case it prints one JSON line
    {"name", "forward_tokens_per_s", "train_tokens_per_s"}.

The models follow the Hugging Face definitions (GPT2LMHeadModel and
LlamaForCausalLM in eager mode, without dropout), written the way one would in
plain torch: GPT-2's Conv1D as addmm with [in, out] weights, attention as two
matmuls with a causal mask and a float32 softmax, a tied GPT-2 head, RoPE
with rotate_half. Training is one step of what lm.train does: forward,
cross-entropy on next tokens, backward, gradient clipping to norm 1, AdamW.
"""
import argparse
import ctypes
import json
import math
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def set_threads(n):
    torch.set_num_threads(n)
    # Debian's torch multiplies matrices in OpenBLAS (pthreads), whose pool
    # follows its own setting; lm_bench sets both, so this does too.
    for name in ("libopenblas.so.0", "libopenblasp.so.0"):
        try:
            ctypes.CDLL(name).openblas_set_num_threads(n)
            break
        except (OSError, AttributeError):
            pass


class Conv1D(nn.Module):
    """GPT-2's linear layer: weight [in, out]."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.02)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        shape = x.shape[:-1] + (self.weight.shape[1],)
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(shape)


def causal_attention(q, k, v, scale):
    t = q.shape[-2]
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    mask = torch.ones(t, t, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(mask, float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    return torch.matmul(probs, v)


class Gpt2Block(nn.Module):
    def __init__(self, d, heads, d_mlp):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d, eps=1e-5)
        self.c_attn = Conv1D(d, 3 * d)
        self.c_proj = Conv1D(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5)
        self.c_fc = Conv1D(d, d_mlp)
        self.mlp_proj = Conv1D(d_mlp, d)

    def forward(self, x):
        b, t, d = x.shape
        hd = d // self.heads
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
        a = causal_attention(q, k, v, 1.0 / math.sqrt(hd))
        x = x + self.c_proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt2(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["d_model"]
        self.wte = nn.Parameter(torch.randn(c["vocab"], d) * 0.02)
        self.wpe = nn.Parameter(torch.randn(c["ctx"], d) * 0.01)
        self.h = nn.ModuleList(Gpt2Block(d, c["heads"], c["d_mlp"]) for _ in range(c["layers"]))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)

    def forward(self, ids):
        x = F.embedding(ids, self.wte) + self.wpe[: ids.shape[1]]
        for block in self.h:
            x = block(x)
        return F.linear(self.ln_f(x), self.wte)  # tied head


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class LlamaBlock(nn.Module):
    def __init__(self, d, heads, d_mlp):
        super().__init__()
        self.heads = heads
        self.input_layernorm = RMSNorm(d)
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.post_attention_layernorm = RMSNorm(d)
        self.gate_proj = nn.Linear(d, d_mlp, bias=False)
        self.up_proj = nn.Linear(d, d_mlp, bias=False)
        self.down_proj = nn.Linear(d_mlp, d, bias=False)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        hd = d // self.heads
        h = self.input_layernorm(x)
        q, k, v = (p(h).view(b, t, self.heads, hd).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        a = causal_attention(q, k, v, 1.0 / math.sqrt(hd))
        x = x + self.o_proj(a.transpose(1, 2).reshape(b, t, d))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["d_model"]
        self.heads = c["heads"]
        self.embed_tokens = nn.Embedding(c["vocab"], d)
        self.layers = nn.ModuleList(LlamaBlock(d, c["heads"], c["d_mlp"]) for _ in range(c["layers"]))
        self.norm = RMSNorm(d)
        self.lm_head = nn.Linear(d, c["vocab"], bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids):
        t = ids.shape[1]
        hd = self.embed_tokens.weight.shape[1] // self.heads
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
        freqs = torch.outer(torch.arange(t).float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.norm(x)).float()


def median_seconds(fn, warmup, iters, min_seconds):
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < iters or (time.perf_counter() - start < min_seconds and len(times) < 10 * iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_case(c):
    torch.manual_seed(0)
    model = (Gpt2 if c["arch"] == "gpt2" else Llama)(c)
    ids = torch.randint(c["vocab"], (c["batch"], c["ctx"]))
    tokens = ids.numel()

    model.eval()

    def forward():
        with torch.no_grad():
            model(ids)

    fwd = median_seconds(forward, c["warmup"], c["iters"], c["min_seconds"])

    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    params = list(model.parameters())

    def train_step():
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        return loss.item()

    train = median_seconds(train_step, c["warmup"], c["iters"], c["min_seconds"])
    return {"name": c["name"], "forward_tokens_per_s": tokens / fwd, "train_tokens_per_s": tokens / train}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", required=True, help="JSON list of cases (see the module doc)")
    args = ap.parse_args()
    set_threads(args.threads)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for case in json.loads(args.config):
        print(json.dumps(run_case(case)), flush=True)


if __name__ == "__main__":
    main()
