#!/usr/bin/python3
"""Reference outputs and gradients of PyTorch's nn.RNN, nn.LSTM and nn.GRU for the tapegrad tests.

Run once with Debian's PyTorch (python3-torch); the outputs are committed so the tests need no
PyTorch:

    /usr/bin/python3 tests/reference/make_rnn_reference.py tests/reference/rnn_reference.safetensors

With a second argument, a checkpoint written by tapegrad (tests/reference/tapegrad_lstm.safetensors,
written by the test "reference: tapegrad checkpoint for PyTorch"), it also loads that file into
nn.LSTM and compares PyTorch's output with the output tapegrad stored beside the weights.
"""
import sys

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from safetensors_io import read_safetensors, write_safetensors

T, B, I, H = 5, 3, 3, 4
LENGTHS = [5, 2, 4]


def case(kind, packed, out):
    torch.manual_seed({"rnn": 1, "lstm": 2, "gru": 3}[kind] + (10 if packed else 0))
    cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind]
    model = cls(I, H, num_layers=2, bidirectional=True).double()
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, B, H, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(4, B, H, dtype=torch.float64, requires_grad=True)
    w_out = torch.randn(T, B, 2 * H, dtype=torch.float64)
    w_h = torch.randn(4, B, H, dtype=torch.float64)
    w_c = torch.randn(4, B, H, dtype=torch.float64)
    state = (h0, c0) if kind == "lstm" else h0
    inp = pack_padded_sequence(x, LENGTHS, enforce_sorted=False) if packed else x
    y, s = model(inp, state)
    if packed:
        y, _ = pad_packed_sequence(y, total_length=T)
    h_n, c_n = s if kind == "lstm" else (s, None)
    loss = (y * w_out).sum() + (h_n * w_h).sum()
    if c_n is not None:
        loss = loss + (c_n * w_c).sum()
    loss.backward()
    p = f"{kind}{'_packed' if packed else ''}."
    out[p + "x"], out[p + "h0"], out[p + "w_out"], out[p + "w_h"] = x, h0, w_out, w_h
    out[p + "out"], out[p + "h_n"], out[p + "loss"] = y, h_n, loss.reshape(1)
    out[p + "grad.x"], out[p + "grad.h0"] = x.grad, h0.grad
    if kind == "lstm":
        out[p + "c0"], out[p + "w_c"], out[p + "c_n"], out[p + "grad.c0"] = c0, w_c, c_n, c0.grad
    for name, param in model.named_parameters():
        out[p + "param." + name] = param
        out[p + "grad." + name] = param.grad


def check_tapegrad_checkpoint(path):
    tensors = read_safetensors(path)
    model = nn.LSTM(I, H, num_layers=2, bidirectional=True).double()
    state = {k: v.double() for k, v in tensors.items() if not k.startswith("probe.")}
    model.load_state_dict(state)  # strict: every name and shape must match
    y, _ = model(tensors["probe.x"].double())
    diff = (y - tensors["probe.out"].double()).abs().max().item()
    print(f"tapegrad checkpoint {path}: loaded into nn.LSTM (strict); max |output difference| = {diff:.3g}")
    assert diff < 1e-10


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = {}
    for kind in ("rnn", "lstm", "gru"):
        for packed in (False, True):
            case(kind, packed, out)
    write_safetensors(sys.argv[1], out, {"T": str(T), "B": str(B), "I": str(I), "H": str(H),
                                         "lengths": ",".join(map(str, LENGTHS)),
                                         "torch": torch.__version__})
    print(f"wrote {len(out)} tensors to {sys.argv[1]} (torch {torch.__version__})")
    if len(sys.argv) > 2:
        check_tapegrad_checkpoint(sys.argv[2])
