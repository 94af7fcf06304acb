"""PyTorch peer of bench/rnn: one training step (forward + backward + SGD update, loss = MSE of
the last hidden state, float32) of one cell in one config, done one way:

  fused      the library layer (nn.RNN / nn.LSTM / nn.GRU)
  eager      the same cell written from primitive ops, eager mode
  script     the primitive-op sequence loop compiled with TorchScript

Usage: /usr/bin/python3 rnn_torch.py CELL CONFIG WAY THREADS REPS
Prints one JSON line: median ms per step, min, and this process's peak RSS in MiB."""
import sys

import torch
import torch.nn as nn

from torch_timing import time_and_report

CONFIGS = {"small": (50, 32, 32, 128), "large": (100, 64, 64, 256)}


def lstm_cell(x, h, c, w_x, w_h, b):
    i, f, g, o = (x @ w_x + h @ w_h + b).chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_cell(x, h, w_x, w_h, w_xn, w_hn, b, b_n):  # reset before W_hn, as tapegrad's default
    r, z = torch.sigmoid(x @ w_x + h @ w_h + b).chunk(2, 1)
    n = torch.tanh(x @ w_xn + (r * h) @ w_hn + b_n)
    return (1 - z) * h + z * n


def rnn_cell(x, h, w_x, w_h, b):
    return torch.tanh(x @ w_x + h @ w_h + b)


@torch.jit.script
def lstm_seq(xs: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_x: torch.Tensor,
             w_h: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    for t in range(xs.size(0)):
        i, f, g, o = (xs[t] @ w_x + h @ w_h + b).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
    return h


@torch.jit.script
def gru_seq(xs: torch.Tensor, h: torch.Tensor, w_x: torch.Tensor, w_h: torch.Tensor,
            w_xn: torch.Tensor, w_hn: torch.Tensor, b: torch.Tensor, b_n: torch.Tensor) -> torch.Tensor:
    for t in range(xs.size(0)):
        rz = torch.sigmoid(xs[t] @ w_x + h @ w_h + b).chunk(2, 1)
        n = torch.tanh(xs[t] @ w_xn + (rz[0] * h) @ w_hn + b_n)
        h = (1 - rz[1]) * h + rz[1] * n
    return h


@torch.jit.script
def rnn_seq(xs: torch.Tensor, h: torch.Tensor, w_x: torch.Tensor, w_h: torch.Tensor,
            b: torch.Tensor) -> torch.Tensor:
    for t in range(xs.size(0)):
        h = torch.tanh(xs[t] @ w_x + h @ w_h + b)
    return h


def primitive_params(cell, I, H):
    s = 1.0 / H ** 0.5
    u = lambda *shape: torch.empty(*shape).uniform_(-s, s).requires_grad_()
    if cell == "lstm":
        return [u(I, 4 * H), u(H, 4 * H), u(4 * H)]
    if cell == "gru":
        return [u(I, 2 * H), u(H, 2 * H), u(I, H), u(H, H), u(2 * H), u(H)]
    return [u(I, H), u(H, H), u(H)]


def make_step(cell, way, T, B, I, H):
    xs, y = torch.randn(T, B, I), torch.randn(B, H)
    if way == "fused":
        layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](I, H)
        opt = torch.optim.SGD(layer.parameters(), lr=0.01)

        def last_h():
            _, state = layer(xs)
            return (state[0] if cell == "lstm" else state)[0]
    else:
        p = primitive_params(cell, I, H)
        opt = torch.optim.SGD(p, lr=0.01)
        h0 = torch.zeros(B, H)

        def last_h():
            if way == "script":
                if cell == "lstm":
                    return lstm_seq(xs, h0, h0, *p)
                return gru_seq(xs, h0, *p) if cell == "gru" else rnn_seq(xs, h0, *p)
            h, c = h0, h0
            for t in range(T):
                if cell == "lstm":
                    h, c = lstm_cell(xs[t], h, c, *p)
                elif cell == "gru":
                    h = gru_cell(xs[t], h, *p)
                else:
                    h = rnn_cell(xs[t], h, *p)
            return h

    def step():
        opt.zero_grad()
        loss = ((last_h() - y) ** 2).mean()
        loss.backward()
        opt.step()
    return step


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    cell, config, way, threads, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    for what, value, allowed in (("CELL", cell, ("rnn", "lstm", "gru")), ("CONFIG", config, tuple(CONFIGS)),
                                 ("WAY", way, ("fused", "eager", "script"))):
        if value not in allowed:
            sys.exit(f"rnn_torch.py: {what} must be one of {', '.join(allowed)}, not {value!r}")
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    T, B, I, H = CONFIGS[config]
    step = make_step(cell, way, T, B, I, H)
    # at least 3 warm-up steps: TorchScript's profiling executor optimises after two runs
    time_and_report(step, reps, 3)


if __name__ == "__main__":
    main()
