#!/usr/bin/python3
"""Independent reference for Loupe's decoder-only models (workers/lm/model).

Implements GPT-2 and the Llama family (Llama, Mistral, Qwen2: grouped-query
attention, RoPE with rope_theta, optional qkv / o / MLP biases, head_dim) in
plain torch, in float64, from the Hugging Face model definitions' math (no
transformers, no safetensors package: safetensors files are written and read
here with json + struct + numpy). It

  * builds tiny random models and saves each as a Hugging Face directory
    (config.json + model.safetensors, or sharded model-*.safetensors with
    model.safetensors.index.json), in F32, F16 or BF16;
  * saves, next to each directory, NAME.expected.safetensors with the input
    ids, the expected logits, some hooked activations (TransformerLens names:
    blocks.L.hook_resid_post, ...) and the logits after zeroing the residual
    stream after block 0 at one position.

The C++ test (workers/lm/model/reference_test.cc) loads the directories,
compares, and also saves models with Loupe and runs this script with --check
on them, so a Loupe-saved directory is verified to load under the same rules
transformers applies (tensor names, shapes, config fields, "format": "pt").

Usage:
  /usr/bin/python3 make_reference.py                    # (re)writes the fixtures
  /usr/bin/python3 make_reference.py --check DIR EXPECTED [--check DIR EXPECTED ...]
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH, SEQ = 2, 16
PATCH_POSITION = 5  # the position whose resid_post.0 is zeroed in logits_patched

# --------------------------------------------------------------------------
# safetensors, by hand
# --------------------------------------------------------------------------

def tensor_bytes(t, dtype):
    t = t.detach().contiguous().cpu()
    if dtype == "F32":
        return t.to(torch.float32).numpy().astype("<f4").tobytes()
    if dtype == "F16":
        return t.to(torch.float16).numpy().astype("<f2").tobytes()
    if dtype == "BF16":  # torch rounds to nearest even; numpy has no bf16
        return t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
    if dtype == "I64":
        return t.to(torch.int64).numpy().astype("<i8").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype_of):
    """tensors: name -> tensor; dtype_of: name -> "F32" | "F16" | "BF16" | "I64"."""
    header = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        b = tensor_bytes(tensors[name], dtype_of(name))
        header[name] = {"dtype": dtype_of(name), "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return offset


def read_safetensors(path):
    """-> (name -> tensor (float64 for floats, int64 for I64), name -> dtype, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", None)
    body = data[8 + n:]
    out, dtypes = {}, {}
    for name, info in header.items():
        lo, hi = info["data_offsets"]
        raw, dt = body[lo:hi], info["dtype"]
        if dt == "F32":
            a = np.frombuffer(raw, "<f4").astype(np.float64)
        elif dt == "F16":
            a = np.frombuffer(raw, "<f2").astype(np.float64)
        elif dt == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view("<f4").astype(np.float64)
        elif dt == "I64":
            a = np.frombuffer(raw, "<i8").copy()
        else:
            raise ValueError(f"{path}: {name}: unexpected dtype {dt}")
        out[name] = torch.from_numpy(np.array(a)).reshape(info["shape"])
        dtypes[name] = dt
    return out, dtypes, metadata


# --------------------------------------------------------------------------
# The models, in float64
# --------------------------------------------------------------------------

class Hooks:
    """capture: set of TransformerLens names to record; patch: name -> fn."""

    def __init__(self, capture=(), patch=None):
        self.capture, self.patch, self.seen = set(capture), patch or {}, {}

    def __call__(self, site, layer, x):
        name = f"blocks.{layer}.hook_{site}"
        if name in self.patch:
            x = self.patch[name](x)
        if name in self.capture:
            self.seen[name] = x.clone()
        return x


def causal_softmax_attention(q, k, v, scale):
    """q, k, v: [B, H, T, D]. Masked scores take the dtype's minimum, as HF does."""
    t = q.shape[-2]
    scores = (q @ k.transpose(-1, -2)) * scale
    allowed = torch.ones(t, t, dtype=torch.bool).tril()
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) @ v


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_new(x):  # the tanh approximation GPT-2 was trained with
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gpt2_forward(cfg, p, ids, hooks):
    """p: parameter name (without the 'transformer.' prefix) -> float64 tensor."""
    d, nh = cfg["n_embd"], cfg["n_head"]
    hd = d // nh
    b, t = ids.shape
    x = p["wte.weight"][ids] + p["wpe.weight"][torch.arange(t)]
    eps = cfg["layer_norm_epsilon"]
    for i in range(cfg["n_layer"]):
        g = lambda name: p[f"h.{i}.{name}"]
        x = hooks("resid_pre", i, x)
        h = layer_norm(x, g("ln_1.weight"), g("ln_1.bias"), eps)
        qkv = h @ g("attn.c_attn.weight") + g("attn.c_attn.bias")  # Conv1D: [in, out]
        q, k, v = (z.reshape(b, t, nh, hd).transpose(1, 2) for z in qkv.split(d, dim=-1))
        scale = 1.0 / math.sqrt(hd) if cfg.get("scale_attn_weights", True) else 1.0
        if cfg.get("scale_attn_by_inverse_layer_idx", False):
            scale /= float(i + 1)
        a = causal_softmax_attention(q, k, v, scale).transpose(1, 2).reshape(b, t, d)
        a = a @ g("attn.c_proj.weight") + g("attn.c_proj.bias")
        a = hooks("attn_out", i, a)
        x = x + a
        x = hooks("resid_mid", i, x)
        h = layer_norm(x, g("ln_2.weight"), g("ln_2.bias"), eps)
        m = gelu_new(h @ g("mlp.c_fc.weight") + g("mlp.c_fc.bias"))
        m = m @ g("mlp.c_proj.weight") + g("mlp.c_proj.bias")
        m = hooks("mlp_out", i, m)
        x = x + m
        x = hooks("resid_post", i, x)
    x = layer_norm(x, p["ln_f.weight"], p["ln_f.bias"], eps)
    return x @ p["wte.weight"].T  # tied head


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def scaled_inv_freq(inv_freq, scaling):
    """rope_scaling as transformers' modeling_rope_utils defines it (linear, llama3)."""
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if kind == "default":
        return inv_freq
    if kind == "linear":
        return inv_freq / scaling["factor"]
    assert kind == "llama3", kind
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old = scaling["original_max_position_embeddings"]
    out = []
    for f in inv_freq.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < old / high:      # high frequency: unchanged
            out.append(f)
        elif wavelen > old / low:     # low frequency: interpolated by factor
            out.append(f / factor)
        else:                         # the band between: a smooth mix of both
            smooth = (old / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return torch.tensor(out, dtype=torch.float64)


def rope(x, theta, scaling=None):
    """x: [B, H, T, D]; positions 0..T-1; the 'half split' layout HF Llama uses."""
    t, hd = x.shape[-2], x.shape[-1]
    inv_freq = scaled_inv_freq(1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd), scaling)
    angles = torch.arange(t, dtype=torch.float64)[:, None] * inv_freq[None, :]
    emb = torch.cat([angles, angles], dim=-1)
    return x * emb.cos() + rotate_half(x) * emb.sin()


def llama_flags(cfg):
    """(qkv bias, o bias, mlp bias) as each model_type defines them."""
    if cfg["model_type"] == "qwen2":
        return True, False, False
    if cfg["model_type"] == "mistral":
        return False, False, False
    ab = cfg.get("attention_bias", False)
    return ab, ab, cfg.get("mlp_bias", False)


def llama_forward(cfg, p, ids, hooks):
    d, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or d // nh
    b, t = ids.shape
    qkv_bias, o_bias, mlp_bias = llama_flags(cfg)
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]

    def lin(x, prefix, bias):
        y = x @ p[prefix + ".weight"].T  # nn.Linear: [out, in]
        return y + p[prefix + ".bias"] if bias else y

    x = p["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        x = hooks("resid_pre", i, x)
        h = rms_norm(x, p[pre + "input_layernorm.weight"], eps)
        q = lin(h, pre + "self_attn.q_proj", qkv_bias).reshape(b, t, nh, hd).transpose(1, 2)
        k = lin(h, pre + "self_attn.k_proj", qkv_bias).reshape(b, t, nkv, hd).transpose(1, 2)
        v = lin(h, pre + "self_attn.v_proj", qkv_bias).reshape(b, t, nkv, hd).transpose(1, 2)
        q, k = rope(q, theta, cfg.get("rope_scaling")), rope(k, theta, cfg.get("rope_scaling"))
        rep = nh // nkv  # query head j reads kv head j // rep
        k = k[:, :, None].expand(b, nkv, rep, t, hd).reshape(b, nh, t, hd)
        v = v[:, :, None].expand(b, nkv, rep, t, hd).reshape(b, nh, t, hd)
        a = causal_softmax_attention(q, k, v, 1.0 / math.sqrt(hd))
        a = lin(a.transpose(1, 2).reshape(b, t, nh * hd), pre + "self_attn.o_proj", o_bias)
        a = hooks("attn_out", i, a)
        x = x + a
        x = hooks("resid_mid", i, x)
        h = rms_norm(x, p[pre + "post_attention_layernorm.weight"], eps)
        gate = lin(h, pre + "mlp.gate_proj", mlp_bias)
        m = lin(torch.nn.functional.silu(gate) * lin(h, pre + "mlp.up_proj", mlp_bias),
                pre + "mlp.down_proj", mlp_bias)
        m = hooks("mlp_out", i, m)
        x = x + m
        x = hooks("resid_post", i, x)
    x = rms_norm(x, p["model.norm.weight"], eps)
    head = p["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else p["lm_head.weight"]
    return x @ head.T


# --------------------------------------------------------------------------
# Expected tensor names (what transformers would load without complaint)
# --------------------------------------------------------------------------

def gpt2_shapes(cfg):
    d, v, n = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]
    f = cfg.get("n_inner") or 4 * d
    s = {"wte.weight": [v, d], "wpe.weight": [n, d], "ln_f.weight": [d], "ln_f.bias": [d]}
    for i in range(cfg["n_layer"]):
        for name, shape in [("ln_1.weight", [d]), ("ln_1.bias", [d]),
                            ("attn.c_attn.weight", [d, 3 * d]), ("attn.c_attn.bias", [3 * d]),
                            ("attn.c_proj.weight", [d, d]), ("attn.c_proj.bias", [d]),
                            ("ln_2.weight", [d]), ("ln_2.bias", [d]),
                            ("mlp.c_fc.weight", [d, f]), ("mlp.c_fc.bias", [f]),
                            ("mlp.c_proj.weight", [f, d]), ("mlp.c_proj.bias", [d])]:
            s[f"h.{i}.{name}"] = shape
    return s


def llama_shapes(cfg):
    d, v, f = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or d // nh
    qkv_bias, o_bias, mlp_bias = llama_flags(cfg)
    s = {"model.embed_tokens.weight": [v, d], "model.norm.weight": [d]}
    if not cfg.get("tie_word_embeddings", False):
        s["lm_head.weight"] = [v, d]
    for i in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        s[pre + "input_layernorm.weight"] = [d]
        s[pre + "post_attention_layernorm.weight"] = [d]
        for name, out, inp, bias in [("self_attn.q_proj", nh * hd, d, qkv_bias),
                                     ("self_attn.k_proj", nkv * hd, d, qkv_bias),
                                     ("self_attn.v_proj", nkv * hd, d, qkv_bias),
                                     ("self_attn.o_proj", d, nh * hd, o_bias),
                                     ("mlp.gate_proj", f, d, mlp_bias),
                                     ("mlp.up_proj", f, d, mlp_bias),
                                     ("mlp.down_proj", d, f, mlp_bias)]:
            s[pre + name + ".weight"] = [out, inp]
            if bias:
                s[pre + name + ".bias"] = [out]
    return s


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------

def gpt2_config(**kw):
    cfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
           "activation_function": "gelu_new", "n_embd": 64, "n_layer": 2, "n_head": 4,
           "n_positions": 64, "n_ctx": 64, "n_inner": 128, "layer_norm_epsilon": 1e-5,
           "vocab_size": 256, "bos_token_id": 255, "eos_token_id": 255,
           "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1, "initializer_range": 0.02,
           "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
           "reorder_and_upcast_attn": False, "torch_dtype": "float32"}
    cfg.update(kw)
    return cfg


def llama_config(model_type="llama", **kw):
    arch = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}
    cfg = {"architectures": [arch[model_type]], "model_type": model_type, "hidden_size": 64,
           "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
           "max_position_embeddings": 64, "tie_word_embeddings": False, "vocab_size": 256,
           "hidden_act": "silu", "initializer_range": 0.02, "attention_dropout": 0.0,
           "bos_token_id": 1, "eos_token_id": 2, "rope_scaling": None, "use_cache": True,
           "torch_dtype": "float32"}
    cfg.update(kw)
    return cfg


def random_params(shapes, gen):
    """Weights ~ N(0, 1/fan_in) so activations stay O(1) and attention is far from
    uniform; norm weights near 1; biases small but non-zero."""
    p = {}
    for name, shape in sorted(shapes.items()):
        if len(shape) == 2:
            fan_in = shape[0] if ("c_attn" in name or "c_proj" in name or "c_fc" in name) else shape[1]
            if "wte" in name or "wpe" in name or "embed_tokens" in name:
                fan_in = 1.0
            p[name] = torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(fan_in)
        elif "norm" in name or "ln_" in name:
            if name.endswith(".bias"):
                p[name] = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
            else:
                p[name] = 1.0 + 0.2 * torch.randn(shape, generator=gen, dtype=torch.float64)
        else:
            p[name] = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
    return p


def round_to(p, dtype):
    """What the C++ side will see after reading `dtype` bytes."""
    tt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    return {k: v.to(tt).to(torch.float64) for k, v in p.items()}


TORCH_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def forward(cfg, p, ids, hooks):
    if cfg["model_type"] == "gpt2":
        q = {k[len("transformer."):] if k.startswith("transformer.") else k: v for k, v in p.items()}
        return gpt2_forward(cfg, q, ids, hooks)
    return llama_forward(cfg, p, ids, hooks)


def expected_tensors(cfg, p, ids, capture):
    hooks = Hooks(capture=capture)
    out = {"input_ids": ids, "logits": forward(cfg, p, ids, hooks)}
    for name, act in hooks.seen.items():
        out[name] = act

    def zero_one_position(x):
        x = x.clone()
        x[:, PATCH_POSITION] = 0.0
        return x

    out["logits_patched"] = forward(cfg, p, ids, Hooks(patch={"blocks.0.hook_resid_post": zero_one_position}))
    return out


def make_fixture(name, cfg, dtype, seed, prefix="transformer.", extra_buffers=False, shards=1,
                 capture=("blocks.0.hook_resid_post",)):
    gen = torch.Generator().manual_seed(seed)
    if cfg["model_type"] == "gpt2":
        shapes = {prefix + k: v for k, v in gpt2_shapes(cfg).items()}
    else:
        shapes = llama_shapes(cfg)
    p = round_to(random_params(shapes, gen), dtype)
    ids = torch.randint(0, cfg["vocab_size"], (BATCH, SEQ), generator=gen)

    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    cfg = dict(cfg, torch_dtype=TORCH_DTYPE[dtype])
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    tensors = dict(p)
    if extra_buffers:  # what old GPT-2 checkpoints carry: the causal-mask buffers
        n = cfg["n_positions"]
        for i in range(cfg["n_layer"]):
            tensors[f"{prefix}h.{i}.attn.bias"] = torch.ones(n, n).tril().reshape(1, 1, n, n)
            tensors[f"{prefix}h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    names = sorted(tensors)
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), tensors, lambda _: dtype)
    else:
        per = math.ceil(len(names) / shards)
        weight_map, total = {}, 0
        for s in range(shards):
            fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {k: tensors[k] for k in names[s * per:(s + 1) * per]}
            total += write_safetensors(os.path.join(d, fname), part, lambda _: dtype)
            weight_map.update({k: fname for k in part})
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)

    exp = expected_tensors(cfg, p, ids, capture)
    write_safetensors(os.path.join(HERE, name + ".expected.safetensors"), exp,
                      lambda k: "I64" if k == "input_ids" else "F32")


ALL_SITES = ("blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_attn_out",
             "blocks.1.hook_resid_mid", "blocks.0.hook_mlp_out", "blocks.1.hook_resid_post")


def make_all(only=None):
    if only == "llama3_rope":
        make_llama3_rope()
        return
    # GPT-2 as GPT2LMHeadModel saves it: 'transformer.' prefix, tied head, F32.
    make_fixture("gpt2", gpt2_config(), "F32", seed=1, capture=ALL_SITES)
    # GPT-2 as the original OpenAI-converted checkpoints are laid out: no prefix,
    # attn.bias / attn.masked_bias buffers, here in F16, with per-layer scaling.
    make_fixture("gpt2_noprefix_f16", gpt2_config(n_inner=None, n_embd=32, n_head=2,
                                                  scale_attn_by_inverse_layer_idx=True),
                 "F16", seed=2, prefix="", extra_buffers=True)
    # Llama with GQA (4 query heads, 2 kv heads), untied head, rope_theta 5e5,
    # sharded over two files with an index.
    make_fixture("llama_sharded", llama_config(rope_theta=500000.0), "F32", seed=3, shards=2,
                 capture=ALL_SITES)
    # Qwen2: always-on q/k/v bias, tied embeddings, BF16.
    make_fixture("qwen2_bf16", llama_config("qwen2", rope_theta=1000000.0, rms_norm_eps=1e-6,
                                            tie_word_embeddings=True, use_sliding_window=False,
                                            sliding_window=131072, max_window_layers=2),
                 "BF16", seed=4)
    # Mistral: multi-query (1 kv head), head_dim set explicitly (16, not 32/4),
    # a sliding window longer than the context.
    make_fixture("mistral", llama_config("mistral", hidden_size=32, intermediate_size=64,
                                         num_key_value_heads=1, head_dim=16, sliding_window=4096),
                 "F32", seed=5)
    # Llama with attention_bias (q/k/v/o) and mlp_bias, tied embeddings, F16.
    make_fixture("llama_bias_f16", llama_config(hidden_size=32, intermediate_size=64,
                                                attention_bias=True, mlp_bias=True,
                                                tie_word_embeddings=True),
                 "F16", seed=6)
    make_llama3_rope()
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(HERE) for f in fs
                if not f.endswith(".py"))
    print(f"fixtures: {total} bytes")


def make_llama3_rope():
    # Llama 3.1-style rope_scaling: with original_max_position_embeddings 64 the
    # 16-dim heads have frequencies in all three bands (kept, mixed, divided).
    make_fixture("llama3_rope", llama_config(hidden_size=32, intermediate_size=64, rope_theta=500000.0,
                                             rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                           "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                           "original_max_position_embeddings": 64}),
                 "F32", seed=7)


# --------------------------------------------------------------------------
# --check: load a directory the way transformers does, strictly, and compare
# --------------------------------------------------------------------------

def load_dir(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    for key in ("architectures", "model_type", "torch_dtype"):
        if key not in cfg:
            raise ValueError(f"{d}/config.json lacks '{key}'")
    single = os.path.join(d, "model.safetensors")
    files = [single] if os.path.exists(single) else None
    if files is None:
        with open(os.path.join(d, "model.safetensors.index.json")) as f:
            index = json.load(f)
        files = sorted({os.path.join(d, v) for v in index["weight_map"].values()})
    p, dtypes = {}, {}
    for path in files:
        t, dt, meta = read_safetensors(path)
        if not meta or meta.get("format") != "pt":  # transformers refuses other files
            raise ValueError(f"{path}: metadata lacks format=pt: {meta}")
        if files != [single]:
            for k in t:
                if index["weight_map"].get(k) != os.path.basename(path):
                    raise ValueError(f"{path}: {k} not mapped to this shard in the index")
        p.update(t)
        dtypes.update(dt)
    want_dtype = {v: k for k, v in TORCH_DTYPE.items()}[cfg["torch_dtype"]]
    if set(dtypes.values()) != {want_dtype}:
        raise ValueError(f"{d}: torch_dtype {cfg['torch_dtype']} but tensors are {set(dtypes.values())}")
    if cfg["model_type"] == "gpt2":
        arch_ok = cfg["architectures"] == ["GPT2LMHeadModel"]
        shapes = {"transformer." + k: v for k, v in gpt2_shapes(cfg).items()}
    else:
        arch_ok = cfg["architectures"][0].endswith("ForCausalLM")
        shapes = llama_shapes(cfg)
    if not arch_ok:
        raise ValueError(f"{d}: architectures {cfg['architectures']}")
    missing = sorted(set(shapes) - set(p))
    unexpected = sorted(set(p) - set(shapes))
    if missing or unexpected:
        raise ValueError(f"{d}: missing {missing}, unexpected {unexpected}")
    for k, s in shapes.items():
        if list(p[k].shape) != s:
            raise ValueError(f"{d}: {k} has shape {list(p[k].shape)}, expected {s}")
    return cfg, p


def check(d, expected_path, tol):
    cfg, p = load_dir(d)
    exp, _, _ = read_safetensors(expected_path)
    got = forward(cfg, p, exp["input_ids"], Hooks())
    rel = ((got - exp["logits"]).abs().max() / exp["logits"].abs().max()).item()
    ok = rel <= tol
    print(f"{'OK' if ok else 'FAIL'} {d}: max relative logit error {rel:.3g} (tolerance {tol:g})")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", nargs=2, action="append", metavar=("DIR", "EXPECTED"))
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--only", help="write only this fixture (llama3_rope)")
    args = ap.parse_args()
    if not args.check:
        make_all(args.only)
        return 0
    ok = True
    for d, e in args.check:
        try:
            ok = check(d, e, args.tol) and ok
        except Exception as err:  # report every directory, then fail
            print(f"FAIL {d}: {err}")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
