#!/usr/bin/python3
"""Reference trajectories of torch.optim optimizers, learning-rate schedules and gradient clipping
for tests/test_optim.cpp.

Run once with Debian's PyTorch (python3-torch 1.13); the output is committed so the tests need no
PyTorch:

    /usr/bin/python3 tests/reference/make_optim_reference.py tests/reference/optim_reference.safetensors

Contents (all float64):
  opt.<config>.rosen.p            [20, 2]   Rosenbrock parameter after each of 20 steps
  opt.<config>.quad.{W,v,u}       [20, ...] quadratic problem parameters after each step
                                            (u never gets a gradient and must not move)
  sched.<name>                    [31, 2]   both groups' lr after construction and each of 30 epochs
  clip.<case>.norm                [1]       clip_grad_norm's returned total norm
  clip.<case>.grad.{a,b}          [...]     the clipped gradients (c has no gradient)
The configs, problems and schedules are mirrored exactly in tests/test_optim.cpp.
"""
import math
import sys

import warnings

import torch

from safetensors_io import write_safetensors

STEPS = 20
EPOCHS = 30

# name -> (torch class, keyword arguments). tests/test_optim.cpp has the same table.
CONFIGS = {
    "sgd": (torch.optim.SGD, dict(lr=1e-3)),
    "sgd_momentum": (torch.optim.SGD, dict(lr=1e-3, momentum=0.9)),
    "sgd_dampening": (torch.optim.SGD, dict(lr=1e-3, momentum=0.9, dampening=0.5)),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=1e-3, momentum=0.9, nesterov=True)),
    "sgd_weight_decay": (torch.optim.SGD, dict(lr=1e-3, momentum=0.5, weight_decay=0.1)),
    "adam": (torch.optim.Adam, dict(lr=0.05)),
    "adam_amsgrad": (torch.optim.Adam, dict(lr=0.05, amsgrad=True)),
    "adam_weight_decay": (torch.optim.Adam, dict(lr=0.05, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1)),
    "adamw": (torch.optim.AdamW, dict(lr=0.05)),
    "adamw_amsgrad": (torch.optim.AdamW, dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    "rmsprop": (torch.optim.RMSprop, dict(lr=0.01)),
    "rmsprop_centered": (torch.optim.RMSprop, dict(lr=0.01, centered=True)),
    "rmsprop_momentum": (torch.optim.RMSprop, dict(lr=0.01, momentum=0.9)),
    "rmsprop_all": (torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, eps=1e-4, centered=True, momentum=0.5,
                                              weight_decay=0.1)),
    "adagrad": (torch.optim.Adagrad, dict(lr=0.1)),
    "adagrad_all": (torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.1,
                                              initial_accumulator_value=0.5, eps=1e-3)),
}


def t(values):
    return torch.tensor(values, dtype=torch.float64)


# Rosenbrock: f(p) = (1 - x)^2 + 100 (y - x^2)^2 from (-1.2, 1), one parameter group.
def rosen_problem():
    p = t([-1.2, 1.0]).requires_grad_()

    def loss():
        x, y = p[0:1], p[1:2]
        return ((1 - x) ** 2 + 100 * (y - x * x) ** 2).sum()

    return {"p": p}, [{"params": [p]}], loss


# A quadratic in 9 dimensions over three parameters in two groups:
#   f = 1/2 sum(H * (W - W0)^2) + 1/2 v^T A v - b^T v       (v is [3, 1])
# group 0: W and u (u is not in the loss: no gradient, skipped); group 1: v with its own lr and
# weight decay.
QUAD_H = [[1.0, 2.0, 0.5], [3.0, 0.25, 1.5]]
QUAD_W0 = [[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]]
QUAD_A = [[2.0, 0.5, 0.0], [0.5, 1.0, 0.25], [0.0, 0.25, 3.0]]
QUAD_B = [[1.0], [-2.0], [0.5]]


def quad_problem(lr):
    W = t([[0.1, 0.2, 0.3], [-0.4, 0.5, -0.6]]).requires_grad_()
    v = t([[1.0], [-1.0], [2.0]]).requires_grad_()
    u = t([0.7, -0.3]).requires_grad_()
    H, W0, A, b = t(QUAD_H), t(QUAD_W0), t(QUAD_A), t(QUAD_B)

    def loss():
        return 0.5 * (H * (W - W0) ** 2).sum() + 0.5 * (v * (A @ v)).sum() - (b * v).sum()

    groups = [{"params": [W, u]}, {"params": [v], "lr": lr * 0.5, "weight_decay": 0.05}]
    return {"W": W, "v": v, "u": u}, groups, loss


def run_optimizers(out):
    for name, (cls, kwargs) in CONFIGS.items():
        for problem in ("rosen", "quad"):
            params, groups, loss_fn = rosen_problem() if problem == "rosen" else quad_problem(kwargs["lr"])
            opt = cls(groups, **kwargs)
            traj = {k: [] for k in params}
            for _ in range(STEPS):
                opt.zero_grad(set_to_none=True)
                loss_fn().backward()
                opt.step()
                for k, p in params.items():
                    traj[k].append(p.detach().clone())
            for k, steps in traj.items():
                out[f"opt.{name}.{problem}.{k}"] = torch.stack(steps)
            final = {k: round(v.detach().flatten()[0].item(), 4) for k, v in params.items()}
            print(f"{name:18s} {problem}: loss {loss_fn().item():.6g} first elements {final}")


# Schedules over an SGD optimizer with two groups, lr 0.1 and 0.05.
# Plateau metric: a fixed sequence that improves, stalls, and improves again.
PLATEAU_METRIC = [1.0 / (1 + 0.1 * e) if e < 8 or e >= 20 else 0.5 for e in range(EPOCHS)]


def schedule(name, opt):
    S = torch.optim.lr_scheduler
    if name == "step":
        return [S.StepLR(opt, step_size=7, gamma=0.5)]
    if name == "exponential":
        return [S.ExponentialLR(opt, gamma=0.9)]
    if name == "cosine":
        return [S.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)]
    if name == "cosine_zero":
        return [S.CosineAnnealingLR(opt, T_max=30)]
    if name == "linear":
        return [S.LinearLR(opt, start_factor=0.25, end_factor=1.0, total_iters=8)]
    if name == "linear_default":
        return [S.LinearLR(opt)]
    if name == "linear_decay":
        return [S.LinearLR(opt, start_factor=1.0, end_factor=0.1, total_iters=20)]
    if name == "warmup_cosine":
        warm = S.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=5)
        cos = S.CosineAnnealingLR(opt, T_max=25, eta_min=1e-4)
        return [S.SequentialLR(opt, [warm, cos], milestones=[5])]
    if name == "chain":  # two schedulers stepping the same optimizer compose
        return [S.StepLR(opt, step_size=5, gamma=0.5), S.ExponentialLR(opt, gamma=0.95)]
    if name == "plateau":
        return [S.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2, threshold=1e-2, cooldown=1,
                                    min_lr=0.02)]
    if name == "plateau_max_abs":
        return [S.ReduceLROnPlateau(opt, mode="max", factor=0.3, patience=1, threshold=0.05,
                                    threshold_mode="abs", min_lr=[0.0, 0.01])]
    raise KeyError(name)


SCHEDULES = ["step", "exponential", "cosine", "cosine_zero", "linear", "linear_default", "linear_decay",
             "warmup_cosine", "chain", "plateau", "plateau_max_abs"]


def run_schedules(out):
    for name in SCHEDULES:
        a, b = t([1.0]).requires_grad_(), t([2.0]).requires_grad_()
        opt = torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.05}], lr=0.1)
        scheds = schedule(name, opt)
        lrs = [[g["lr"] for g in opt.param_groups]]
        for epoch in range(EPOCHS):
            opt.step()
            for s in scheds:
                if isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    metric = PLATEAU_METRIC[epoch] if s.mode == "min" else -PLATEAU_METRIC[epoch]
                    s.step(metric)
                else:
                    s.step()
            lrs.append([g["lr"] for g in opt.param_groups])
        out[f"sched.{name}"] = t(lrs)


# Clipping: three parameters, c has no gradient.
CLIP_CASES = {  # name -> (max_norm, norm_type)
    "l2": (1.0, 2.0),
    "l1": (2.0, 1.0),
    "l3": (0.5, 3.0),
    "inf": (0.7, math.inf),
    "no_clip": (100.0, 2.0),
}


def run_clip(out):
    for name, (max_norm, norm_type) in CLIP_CASES.items():
        a = t([[0.5, -1.5, 2.0], [0.25, 3.0, -0.75]]).requires_grad_()
        b = t([-2.5, 0.125]).requires_grad_()
        c = t([1.0]).requires_grad_()
        a.grad = t([[0.3, -1.2, 0.8], [2.0, -0.1, 0.6]])
        b.grad = t([-1.7, 0.9])
        norm = torch.nn.utils.clip_grad_norm_([a, b, c], max_norm, norm_type)
        out[f"clip.{name}.norm"] = norm.reshape(1)
        out[f"clip.{name}.grad.a"] = a.grad
        out[f"clip.{name}.grad.b"] = b.grad
    a = t([[0.3, -1.2, 0.8], [2.0, -0.1, 0.6]]).requires_grad_()
    a.grad = a.detach().clone()
    torch.nn.utils.clip_grad_value_([a], 0.5)
    out["clip.value.grad.a"] = a.grad


if __name__ == "__main__":
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # SequentialLR calls step(0) itself, which warns
    out = {}
    run_optimizers(out)
    run_schedules(out)
    run_clip(out)
    write_safetensors(sys.argv[1], out, {"steps": str(STEPS), "epochs": str(EPOCHS),
                                         "configs": ",".join(CONFIGS), "schedules": ",".join(SCHEDULES),
                                         "clip_cases": ",".join(CLIP_CASES), "torch": torch.__version__})
    print(f"wrote {len(out)} tensors to {sys.argv[1]} (torch {torch.__version__})")
