#!/usr/bin/python3
"""The Python side of bench/sae_bench: one TopK SAE training step written
densely in plain python3-torch (Debian's torch 1.13), the way the common
PyTorch SAE code writes it (SAELens / dictionary_learning / OpenAI's
reference model): the k largest ReLU'd pre-activations scattered into a dense
[batch, d_sae] code and decoded as z @ W_dec, autograd for the backward pass.

    /usr/bin/python3 bench/sae_bench_reference.py --threads 2 --d-model 512 \\
        --d-sae 8192 --k 32 --batch 4096 --warmup 1 --steps 3

The step is the recipe of workers/sae/sae_trainer.cc for topk: FVU loss,
AuxK on dead latents (none die within a benchmark: dead window 10^9 tokens,
as sae_bench sets it), decoder gradient projected onto the unit sphere's
tangent, global gradient clipping to 1, Adam (0.9, 0.999, eps 6.25e-10),
decoder rows renormalised. Prints one JSON line:
    {"torch", "threads", "train_tokens_per_s", "step_seconds", "mm_gflops"}
where mm_gflops is torch.mm's rate on [batch, d_model] x [d_model, d_sae]
(into a preallocated output) in the same process.
"""
import argparse
import json
import time

import torch

# Threads for torch and its OpenBLAS pool, as lm_bench's reference sets them.
from lm_bench_reference import set_threads


def normalised_error(target, estimate):
    variance = (target - target.mean(0, keepdim=True)).pow(2).sum().detach()
    return (target - estimate).pow(2).sum() / variance.clamp_min(1e-12)


class DenseTopKSae:
    def __init__(self, d, s, k, dead_window):
        g = torch.Generator().manual_seed(0)
        w = torch.randn(s, d, generator=g)
        w = w / w.norm(dim=1, keepdim=True)
        self.W_dec = w.clone().requires_grad_()
        self.W_enc = w.t().contiguous().requires_grad_()
        self.b_enc = torch.zeros(s, requires_grad=True)
        self.b_dec = torch.zeros(d, requires_grad=True)
        self.params = [self.W_enc, self.b_enc, self.W_dec, self.b_dec]
        self.opt = torch.optim.Adam(self.params, lr=1e-4, betas=(0.9, 0.999), eps=6.25e-10)
        self.k, self.d, self.dead_window = k, d, dead_window
        self.since_fired = torch.zeros(s, dtype=torch.long)

    def step(self, x):
        pre = torch.addmm(self.b_enc, x - self.b_dec, self.W_enc)
        values, indices = torch.relu(pre).topk(self.k, dim=1)
        z = torch.zeros_like(pre).scatter(1, indices, values)
        x_hat = z @ self.W_dec + self.b_dec
        loss = normalised_error(x, x_hat)
        with torch.no_grad():
            fired = (z > 0).any(0)
            self.since_fired += x.shape[0]
            self.since_fired[fired] = 0
            dead = self.since_fired >= self.dead_window
            n_dead = int(dead.sum())
        if n_dead > 0:
            half = self.d // 2
            k_aux = min(half, n_dead)
            aux_pre, aux_idx = pre.masked_fill(~dead[None], float("-inf")).topk(k_aux, dim=1)
            z_aux = torch.zeros_like(pre).scatter(1, aux_idx, torch.relu(aux_pre))
            residual = (x - x_hat).detach()
            loss = loss + (1 / 32) * min(1.0, n_dead / half) * normalised_error(residual, z_aux @ self.W_dec)
        self.opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            g = self.W_dec.grad
            g -= (g * self.W_dec).sum(1, keepdim=True) * self.W_dec
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        with torch.no_grad():
            self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return loss.item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--d-sae", type=int, default=8192)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    set_threads(a.threads)
    torch.manual_seed(1)
    x = torch.randn(a.batch, a.d_model)

    a_mm, b_mm = torch.randn(a.batch, a.d_model), torch.randn(a.d_model, a.d_sae)
    c_mm = torch.mm(a_mm, b_mm)
    mm_times = []
    for _ in range(10):
        t0 = time.perf_counter()
        torch.mm(a_mm, b_mm, out=c_mm)
        mm_times.append(time.perf_counter() - t0)
    mm_gflops = 2.0 * a.batch * a.d_model * a.d_sae / min(mm_times) / 1e9
    del a_mm, b_mm, c_mm

    sae = DenseTopKSae(a.d_model, a.d_sae, a.k, dead_window=10**9)
    for _ in range(a.warmup):
        sae.step(x)
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        sae.step(x)
        times.append(time.perf_counter() - t0)
    step = min(times)  # the machine is shared: other work only adds time
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "train_tokens_per_s": a.batch / step, "step_seconds": step, "mm_gflops": mm_gflops}),
          flush=True)


if __name__ == "__main__":
    main()
