#!/usr/bin/python3
"""A checkpoint as PyTorch code leaves them, with tensors of many dtypes, for the tapegrad tests.

The state of a small model (nn.Linear(3, 2) as "fc", nn.LSTM(2, 3) as "rnn") stored in F16, BF16
and F32, beside what such files also hold: integer buffers (I64 "num_batches_tracked" and
"lengths"), a BOOL "mask", F16 and BF16 tensors of special values (subnormals, infinities, NaN,
-0), integers of every width PyTorch has, and one I64 tensor with a value beyond 2^53, which
a float64 cannot hold (tapegrad reads it as int64, exactly). For every tensor but that one, "expected.<name>" is
its F64 copy as PyTorch widens it (tensor.double()), which tests/test_safetensors_dtypes.cpp
compares with what tapegrad reads. Run once with Debian's PyTorch (python3-torch); the output
is committed:

    /usr/bin/python3 tests/reference/make_dtype_fixture.py tests/reference/dtype_fixture.safetensors

With a second argument, the safetensors_loader fuzz corpus (fuzz/corpus/safetensors_loader), it
also writes seeds there: this file without the F64 copies, files with every dtype of the format,
and truncations of that file and of the corpus's tapegrad checkpoints (module_net,
module_net_f64).
"""
import json
import os
import struct
import sys

import torch
import torch.nn as nn

DTYPES = {torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16",
          torch.float16: "F16", torch.bfloat16: "BF16", torch.int32: "I32", torch.float32: "F32",
          torch.float64: "F64", torch.int64: "I64"}


def tensor_bytes(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: the same bits as int16
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def safetensors_bytes(entries, metadata):
    """entries: name -> (dtype string, shape, raw bytes). Laid out as the safetensors package
    does: by decreasing element size, then by name, each tensor's data after the previous."""
    size = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
            "F8_E4M3FNUZ": 1, "F8_E5M2FNUZ": 1, "F4": 1, "F6_E2M3": 1, "F6_E3M2": 1, "I16": 2,
            "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8,
            "U64": 8, "C64": 8}
    names = sorted(entries, key=lambda n: (-size[entries[n][0]], n))
    header, data = {"__metadata__": metadata}, b""
    for name in names:
        dtype, shape, raw = entries[name]
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def fixture(expected=True):
    torch.manual_seed(30)
    fc, rnn = nn.Linear(3, 2), nn.LSTM(2, 3)
    tensors = {"fc.weight": fc.weight.half(), "fc.bias": fc.bias.float()}
    for name, p in rnn.named_parameters():
        # weights in BF16, biases in F16 and F32: a mixed-precision checkpoint
        if name.startswith("weight"):
            tensors["rnn." + name] = p.bfloat16()
        else:
            tensors["rnn." + name] = p.half() if name.startswith("bias_ih") else p.float()
    lengths = torch.tensor([5, 2, 4])
    tensors["num_batches_tracked"] = torch.tensor(1234)  # 0-d I64, as nn.BatchNorm1d keeps
    tensors["lengths"] = lengths
    tensors["mask"] = torch.arange(5)[None, :] < lengths[:, None]  # BOOL [3, 5]
    inf, nan = float("inf"), float("nan")
    tensors["specials.f16"] = torch.tensor(
        [0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 2.0**-14, 2.0**-24, 1023 * 2.0**-24,
         -3 * 2.0**-20, inf, -inf, nan, 1 / 3, 0.1, 1e-6], dtype=torch.float64).half()
    tensors["specials.bf16"] = torch.tensor(
        [0.0, -0.0, 1.0, -2.5, 3.3895313892515355e38, 2.0**-126, 2.0**-133, -3 * 2.0**-130,
         inf, -inf, nan, 1 / 3, 0.1, 1e-40], dtype=torch.float64).bfloat16()
    tensors["ints.u8"] = torch.tensor([0, 1, 200, 255], dtype=torch.uint8)
    tensors["ints.i8"] = torch.tensor([-128, -1, 0, 127], dtype=torch.int8)
    tensors["ints.i16"] = torch.tensor([-32768, -2, 3, 32767], dtype=torch.int16)
    tensors["ints.i32"] = torch.tensor([-2**31, -5, 7, 2**31 - 1], dtype=torch.int32)
    tensors["ints.i64"] = torch.tensor([-2**53, -(2**53 - 1), -1, 0, 2**53 - 1, 2**53])
    tensors["ints.i64_beyond_2_53"] = torch.tensor([7, 2**53 + 1, -2**63])

    entries = {}
    for name, t in tensors.items():
        entries[name] = (DTYPES[t.dtype], t.shape, tensor_bytes(t))
        if expected and name != "ints.i64_beyond_2_53":
            entries["expected." + name] = ("F64", t.shape, tensor_bytes(t.double()))
    return safetensors_bytes(entries, {"format": "pt", "writer": "make_dtype_fixture.py",
                                       "torch": torch.__version__})


def every_dtype():
    """One small tensor of each dtype of the format, F8, F4, F6 and C64 included (bytes made by
    hand: this PyTorch has none of those)."""
    e = {}
    e["bool"] = ("BOOL", [4], bytes([0, 1, 1, 0]))
    e["f4"] = ("F4", [4], bytes([0x21, 0xf7]))
    e["f6_e2m3"] = ("F6_E2M3", [4], bytes([0x12, 0x34, 0x56]))
    e["f6_e3m2"] = ("F6_E3M2", [4], bytes([0x65, 0x43, 0x21]))
    e["u8"] = ("U8", [3], bytes([0, 128, 255]))
    e["i8"] = ("I8", [3], struct.pack("<3b", -128, 0, 127))
    e["f8_e5m2"] = ("F8_E5M2", [6], bytes([0x00, 0x3c, 0x7b, 0x7c, 0x7e, 0x81]))
    e["f8_e4m3"] = ("F8_E4M3", [6], bytes([0x00, 0x38, 0x7e, 0x7f, 0xff, 0x01]))
    e["f8_e8m0"] = ("F8_E8M0", [4], bytes([0x00, 0x7f, 0xfe, 0xff]))
    e["f8_e4m3fnuz"] = ("F8_E4M3FNUZ", [4], bytes([0x00, 0x80, 0x7f, 0x01]))
    e["f8_e5m2fnuz"] = ("F8_E5M2FNUZ", [4], bytes([0x00, 0x80, 0x7f, 0xff]))
    e["i16"] = ("I16", [2], struct.pack("<2h", -32768, 32767))
    e["u16"] = ("U16", [2], struct.pack("<2H", 0, 65535))
    e["f16"] = ("F16", [5], struct.pack("<5H", 0x0001, 0x03ff, 0x7bff, 0x7c00, 0xfe01))
    e["bf16"] = ("BF16", [4], struct.pack("<4H", 0x0001, 0x3f80, 0x7f80, 0xffc1))
    e["i32"] = ("I32", [2], struct.pack("<2i", -2**31, 2**31 - 1))
    e["u32"] = ("U32", [2], struct.pack("<2I", 0, 2**32 - 1))
    e["f32"] = ("F32", [2], struct.pack("<2f", 1.5, -0.0))
    e["c64"] = ("C64", [1], struct.pack("<2f", 1.0, -1.0))
    e["f64"] = ("F64", [2], struct.pack("<2d", 2.5, 1e-300))
    e["i64"] = ("I64", [2], struct.pack("<2q", -2**53, 2**53))
    e["u64"] = ("U64", [2], struct.pack("<2Q", 0, 2**53))
    return safetensors_bytes(e, {"format": "pt"})


def seeds(corpus, fixture_bytes):
    """Seeds for fuzz/safetensors_loader, whose Net has the parameters of the fixture's model."""
    def write(name, data):
        with open(os.path.join(corpus, name), "wb") as f:
            f.write(data)

    def header_end(data):
        return 8 + struct.unpack("<Q", data[:8])[0]

    write("dtype_fixture", fixture_bytes)  # no F64 copies: libFuzzer runs with max_len 4096
    write("dtype_every", every_dtype())
    write("dtype_fp8_all_bytes", safetensors_bytes(
        {code.lower(): (code, [256], bytes(range(256)))
         for code in ("F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ")}, {}))
    write("dtype_beyond_2_53", safetensors_bytes(
        {"i64": ("I64", [2], struct.pack("<2q", 1, -2**53 - 1)),
         "u64": ("U64", [1], struct.pack("<Q", 2**64 - 1)),
         "bool": ("BOOL", [2], bytes([1, 2])),
         "w": ("F32", [1], struct.pack("<f", 1.0))}, {}))
    # Truncations of real checkpoints: in the header, at its end, in the data, one byte short.
    for base in ("dtype_fixture", "module_net", "module_net_f64"):
        with open(os.path.join(corpus, base), "rb") as f:
            data = f.read()
        cuts = {"header": header_end(data) // 2, "at_data": header_end(data),
                "data": (header_end(data) + len(data)) // 2, "last_byte": len(data) - 1}
        for what, size in cuts.items():
            write(f"cut_{base}_{what}", data[:size])


if __name__ == "__main__":
    torch.set_num_threads(1)
    data = fixture()
    with open(sys.argv[1], "wb") as f:
        f.write(data)
    print(f"wrote {sys.argv[1]} ({len(data)} bytes, torch {torch.__version__})")
    if len(sys.argv) > 2:
        seeds(sys.argv[2], fixture(expected=False))
        print(f"wrote fuzz seeds to {sys.argv[2]}")
