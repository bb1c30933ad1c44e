#!/usr/bin/python3
"""Independent reference for Loupe's safetensors reader/writer.

Writes testdata/fixture.safetensors using only json, struct and numpy (no
safetensors package), following the format description at
https://github.com/huggingface/safetensors: 8-byte little-endian header length,
JSON header, then raw little-endian tensor bytes. The C++ test
(workers/common/safetensors_test.cc) reads the file and compares every value
with the formulas below, so the two implementations check each other.

Deliberately *not* padded or ordered by element size: the 5-byte U8 tensor
comes first, so later tensors start at unaligned offsets, which the C++
reader must handle (it copies instead of sharing such tensors).

Usage:
  /usr/bin/python3 make_safetensors_fixture.py            # (re)writes the fixture
  /usr/bin/python3 make_safetensors_fixture.py --check F  # parses F, prints a summary
"""
import json
import math
import os
import struct
import sys

import numpy as np


def bf16_bytes(values):
    """float32 -> bfloat16 bytes, rounding to nearest even (numpy lacks bf16)."""
    u = np.asarray(values, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def tensors():
    """(name, dtype, shape, bytes) in file order."""
    return [
        ("u8", "U8", [5], np.array([0, 1, 127, 128, 255], dtype="<u1").tobytes()),
        ("f32", "F32", [2, 3], (np.arange(6, dtype="<f4") * 0.5 - 1.25).reshape(2, 3).tobytes()),
        ("f16", "F16", [4], np.array([0.5, -2.0, 65504.0, 2.0 ** -14], dtype="<f2").tobytes()),
        ("bf16", "BF16", [3], bf16_bytes([1.0, -0.15625, 256.0])),
        ("i64", "I64", [2, 2], np.array([[-(2 ** 40), 1], [2, 2 ** 62]], dtype="<i8").tobytes()),
        ("i32", "I32", [3], np.array([-7, 0, 2 ** 31 - 1], dtype="<i4").tobytes()),
        ("bool", "BOOL", [2, 2], np.array([[True, False], [False, True]], dtype="?").tobytes()),
        ("f64", "F64", [1], np.array([math.pi], dtype="<f8").tobytes()),
        ("scalar", "F32", [], np.array(42.5, dtype="<f4").tobytes()),
        ("empty", "F32", [0, 3], b""),
    ]


def write(path):
    header = {"__metadata__": {"format": "pt", "writer": "make_safetensors_fixture.py"}}
    data = b""
    for name, dtype, shape, raw in tensors():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode("utf-8")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        f.write(data)


NP = {"BOOL": "?", "U8": "<u1", "I8": "<i1", "I16": "<i2", "U16": "<u2", "I32": "<i4",
      "U32": "<u4", "I64": "<i8", "U64": "<u8", "F16": "<f2", "F32": "<f4", "F64": "<f8"}


def check(path):
    """Parses a file (e.g. one written by the C++ writer) and prints each tensor."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    print("metadata:", header.pop("__metadata__", {}))
    spans = []
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        b, e = info["data_offsets"]
        spans.append((b, e))
        raw = data[b:e]
        if info["dtype"] == "BF16":
            arr = (np.frombuffer(raw, "<u2").astype("<u4") << 16).view("<f4")
        else:
            arr = np.frombuffer(raw, NP[info["dtype"]])
        arr = arr.reshape(info["shape"])
        aligned = (8 + n + b) % arr.dtype.itemsize == 0
        print(f"{name}: {info['dtype']} {info['shape']} @[{b},{e})"
              f"{'' if aligned else ' (unaligned)'} -> {arr.ravel()[:8].tolist()}")
    pos = 0
    for b, e in spans:
        assert b == pos, f"gap/overlap at {b} (expected {pos})"
        pos = e
    assert pos == len(data), "trailing bytes"
    print("ok: header", n, "bytes, data", len(data), "bytes")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2])
    else:
        write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixture.safetensors"))
