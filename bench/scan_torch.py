"""PyTorch peer of bench/scan: one training step (forward + backward + SGD, loss = sum(output * w),
w fixed, float32, h0 = 0.5) of a 1-layer minGRU written from the paper's equations (Feng et al.
2024, "Were RNNs All We Needed?"), in one of two forms:

  log   the parallel log-space form: log h_t = a*_t + logcumsumexp(log h0, log b_s - a*_s),
        a*_t = cumsum(log(1 - z_s)) (Heinsen 2023), positive candidates g(h~); batch-first
  seq   the sequential form, a Python loop: h_t = (1 - z_t) h_{t-1} + z_t g(h~_t); time-major

Both project every step's input at once with nn.Linear (as tapegrad's cell does).
Usage: /usr/bin/python3 scan_torch.py FORM T B I H REPS
Prints one JSON line: median ms per step, min, and this process's peak RSS in MiB."""
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_timing import time_and_report


def g(x):  # positive candidate: x + 0.5 for x >= 0, sigmoid(x) below
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x):
    return torch.where(x >= 0, (F.relu(x) + 0.5).log(), -F.softplus(-x))


def min_gru_log(proj, xs, log_h0):  # batch-first xs [B, T, I], as the paper's code (its
    k, h_hat = proj(xs).chunk(2, dim=-1)  # cumsum is 2.7x faster over dim 1 than dim 0 here)
    log_a = -F.softplus(k)                    # log(1 - z_t)
    log_b = -F.softplus(-k) + log_g(h_hat)    # log z_t + log h~_t
    a_star = torch.cumsum(log_a, dim=1)
    terms = torch.cat([log_h0.unsqueeze(1), log_b - a_star], dim=1)
    log_h = a_star + torch.logcumsumexp(terms, dim=1)[:, 1:]
    return torch.exp(log_h)


def min_gru_seq(proj, xs, h0):
    k, h_hat = proj(xs).chunk(2, dim=-1)
    # unbind, not z[t]: the backward of each z[t] would write a zeroed [T, B, H] (O(T^2))
    z, h_tilde = torch.sigmoid(k).unbind(0), g(h_hat).unbind(0)
    h, out = h0, []
    for z_t, h_tilde_t in zip(z, h_tilde):
        h = (1 - z_t) * h + z_t * h_tilde_t
        out.append(h)
    return torch.stack(out)


def make_step(form, T, B, I, H):
    proj = nn.Linear(I, 2 * H)
    bound = 1 / math.sqrt(H)  # tapegrad's draw: U(-1/sqrt(H), 1/sqrt(H))
    for p in proj.parameters():
        nn.init.uniform_(p, -bound, bound)
    xs, w = torch.randn(T, B, I), torch.randn(T, B, H)
    h0 = torch.full((B, H), 0.5)
    opt = torch.optim.SGD(proj.parameters(), lr=1e-3)
    if form == "log":  # batch-first
        xs, w = xs.transpose(0, 1).contiguous(), w.transpose(0, 1).contiguous()

    def step():
        opt.zero_grad()
        h = min_gru_log(proj, xs, h0.log()) if form == "log" else min_gru_seq(proj, xs, h0)
        (h * w).sum().backward()
        opt.step()
    return step


def main():
    form, (T, B, I, H, reps) = sys.argv[1], map(int, sys.argv[2:7])
    torch.manual_seed(0)
    torch.set_num_threads(1)
    step = make_step(form, T, B, I, H)
    time_and_report(step, reps, 2)  # at least 2 steps and 0.25 s, as bench/scan.cpp


if __name__ == "__main__":
    main()
