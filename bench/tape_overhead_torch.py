"""PyTorch eager peer of bench/tape_overhead.cpp: the same graph, shapes, dtype, op count and
repetitions, on one thread. Run by the C++ bench with /usr/bin/python3; prints one JSON line."""
import argparse
import json
import statistics
import time

import torch

X0 = [0.1, 0.2, 0.3, 0.4]
W = [0.5, -0.6, 0.7, -0.8]
B = [0.05, 0.1, -0.05, 0.2]


def chain(h, w, b, steps):
    for _ in range(steps):
        h = torch.tanh(h * w + b)
    return h.sum()


def stats(samples, ops):
    """samples: (wall, cpu) seconds per run -> ns per op, median and min on each clock and on
    "time", the smaller of the two per run (as Elapsed::time() in bench/common.hpp)."""
    out = {}
    for clock, pick in (("time", min), ("wall", lambda w, c: w), ("cpu", lambda w, c: c)):
        per_op = [pick(w, c) * 1e9 / ops for w, c in samples]
        out[clock] = {"median": statistics.median(per_op), "min": min(per_op)}
    return out


def now():
    # wall clock and the process's CPU time (all threads), as bench/common.hpp
    return time.perf_counter(), time.process_time()


def since(t0, t1):
    return t1[0] - t0[0], t1[1] - t0[1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ops", type=int, default=1000)
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    steps = max(1, (args.ops - 1) // 3)
    ops = 3 * steps + 1  # mul, add, tanh per step, then sum

    x0 = torch.tensor(X0, dtype=torch.float32)
    w = torch.tensor(W, dtype=torch.float32, requires_grad=True)
    b = torch.tensor(B, dtype=torch.float32, requires_grad=True)

    fwd, bwd, total = [], [], []
    loss_value = 0.0
    for i in range(args.warmup + args.reps):
        w.grad = None
        b.grad = None
        t0 = now()
        loss = chain(x0, w, b, steps)
        t1 = now()
        loss.backward()
        loss_value = loss.item()
        del loss
        t2 = now()
        if i >= args.warmup:
            fwd.append(since(t0, t1))
            bwd.append(since(t1, t2))
            total.append(since(t0, t2))

    nograd = []
    for i in range(args.warmup + args.reps):
        t0 = now()
        with torch.no_grad():
            loss = chain(x0, w, b, steps)
        t1 = now()
        if i >= args.warmup:
            nograd.append(since(t0, t1))

    print(json.dumps({
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "ops": ops,
        "fwd_bwd_ns_per_op": stats(total, ops),
        "fwd_ns_per_op": stats(fwd, ops),
        "bwd_ns_per_op": stats(bwd, ops),
        "nograd_fwd_ns_per_op": stats(nograd, ops),
        "loss": loss_value,
        "grad_w": w.grad.tolist(),
        "grad_b": b.grad.tolist(),
    }))


if __name__ == "__main__":
    main()
