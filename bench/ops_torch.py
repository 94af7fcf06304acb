"""PyTorch peer of bench/ops: forward + backward of each op on [64, 1024] float32, one thread.
Usage: /usr/bin/python3 ops_torch.py SAMPLES INNER
Prints one JSON line: us per forward+backward pass (median of SAMPLES samples of INNER passes)
by op name, the same names and computations as bench/ops.cpp."""
import json
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(3)

u = lambda *shape: (torch.rand(*shape) + 0.5).requires_grad_()
x, y, bias, column = u(64, 1024), u(64, 1024), u(1024), u(64, 1)
mask = torch.rand(64, 1024) < 0.5

OPS = {
    "add": lambda: x + y,
    "add_bias_row": lambda: x + bias,
    "sub": lambda: x - y,
    "mul": lambda: x * y,
    "mul_column": lambda: x * column,
    "div": lambda: x / y,
    "neg": lambda: -x,
    "mul_scalar": lambda: x * 3.0,
    "pow_scalar": lambda: x ** 2.5,
    "pow_tensor": lambda: x ** y,
    "sqrt": lambda: torch.sqrt(x),
    "abs": lambda: torch.abs(x),
    "exp": lambda: torch.exp(x),
    "log": lambda: torch.log(x),
    "log1p": lambda: torch.log1p(x),
    "tanh": lambda: torch.tanh(x),
    "sigmoid": lambda: torch.sigmoid(x),
    "relu": lambda: torch.relu(x - 1.0),
    "leaky_relu": lambda: F.leaky_relu(x, 0.01),
    "softplus": lambda: F.softplus(x),
    "clamp": lambda: torch.clamp(x, 0.7, 1.3),
    "maximum": lambda: torch.maximum(x, y),
    "minimum": lambda: torch.minimum(x, y),
    "where": lambda: torch.where(mask, x, y),
    "sum": lambda: x.sum(),
    "sum_rows": lambda: x.sum(1),
    "sum_cols": lambda: x.sum(0),
    "mean": lambda: x.mean(),
    "mean_rows": lambda: x.mean(1),
    "max": lambda: x.max(),
    "max_rows": lambda: x.amax(1),
    "min_rows": lambda: x.amin(1),
    "logsumexp_rows": lambda: torch.logsumexp(x, 1),
    "var": lambda: x.var(),
    "var_rows": lambda: x.var(1),
}


def main():
    samples, inner = int(sys.argv[1]), int(sys.argv[2])
    out = {"torch": torch.__version__}
    for name, f in OPS.items():
        def run():
            for _ in range(inner):
                r = f()
                r.backward(torch.ones_like(r))
        run()
        times = []
        for _ in range(samples):  # the smaller of wall and CPU time, as bench/ops does
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            times.append(min(time.perf_counter() - wall, time.process_time() - cpu) * 1e6 / inner)
        for t in (x, y, bias, column):
            t.grad = None
        times.sort()
        out[name] = times[len(times) // 2]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
