#!/usr/bin/python3
"""Reference outputs and gradients of minGRU (log-space, parallel) and sLSTM for tapegrad's
layers/modern_cells.hpp, written from the equations of the cells' spec (the papers' equations as
the spec states them), not from tapegrad's code.

Run once with Debian's PyTorch (python3-torch); the output is committed so the tests need no
PyTorch:

    /usr/bin/python3 tests/reference/make_modern_reference.py \
        tests/reference/modern_reference.safetensors

Each model is one layer, forward direction, input size I = 3, hidden size H = 4, T = 6 steps,
batch B = 2, in float64. Weights are drawn U(-0.5, 0.5) and named as tapegrad's Recurrent names
them (weight_ih_l0, ...); x ~ N(0, 1); initial states are [1, B, H] (L*D = 1). The loss is

    loss = sum(out * w) + sum(h_n * w_final)      (w [T, B, H], w_final [B, H])

Stored per model under "mingru." and "slstm.": param.<name>, x, <state>0 (initial states), w,
w_final, out, <state>_n (final states), loss, grad.x, grad.<state>0, grad.<name>.

minGRU (Feng et al. 2024): z = σ(k), h̃ = g(ĥ) with g(v) = v + 0.5 (v >= 0), σ(v) (v < 0);
h_t = (1 - z) h_{t-1} + z h̃. Computed in the paper's parallel log-space form (Heinsen 2023):
log a = -softplus(k), log b = -softplus(-k) + log g(ĥ), a* = cumsum(log a), log h_t = a*_t +
logcumsumexp over [log h0, log b_s - a*_s]; the script asserts it equals a plain sequential loop
to 1e-12 (outputs and gradients). h0 > 0.

sLSTM (Beck et al. 2024), step by step, gate pre-activations x W_ih^T + b_ih + h W_hh^T in the
order ĩ, f̃, z̃, õ; states h, c, n, m:
    m_t = max(f̃ + m_{t-1}, ĩ),  i' = exp(ĩ - m_t),  f' = exp(f̃ + m_{t-1} - m_t)
    c_t = f' c_{t-1} + i' tanh(z̃),  n_t = f' n_{t-1} + i',  h_t = σ(õ) c_t / n_t
Gradients flow through the stabiliser m as well (nothing is detached).
"""
import sys

import torch
import torch.nn.functional as F

from safetensors_io import write_safetensors

T, B, I, H = 6, 2, 3, 4
dt = torch.float64


def uniform(*shape, lo=-0.5, hi=0.5):
    return (torch.rand(*shape, dtype=dt) * (hi - lo) + lo).requires_grad_(True)


def log_g(v):
    """log g(v): log(relu(v) + 0.5) for v >= 0, -softplus(-v) = log σ(v) for v < 0."""
    return torch.where(v >= 0, torch.log(torch.relu(v) + 0.5), -F.softplus(-v))


def g(v):
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def mingru_log_space(x, h0, weight_ih, bias_ih):
    """x [T, B, I], h0 [B, H] > 0 -> every h_t [T, B, H], by Heinsen's parallel scan."""
    p = F.linear(x, weight_ih, bias_ih)  # [T, B, 2H]
    k, hh = p.chunk(2, dim=-1)
    log_a = -F.softplus(k)  # log(1 - z)
    log_b = -F.softplus(-k) + log_g(hh)  # log(z h̃)
    a_star = torch.cumsum(log_a, dim=0)  # Σ_{s<=t} log a_s
    terms = torch.cat([torch.log(h0).unsqueeze(0), log_b - a_star], dim=0)  # [T+1, B, H]
    log_h = a_star + torch.logcumsumexp(terms, dim=0)[1:]
    return torch.exp(log_h)


def mingru_sequential(x, h0, weight_ih, bias_ih):
    h, out = h0, []
    for t in range(x.shape[0]):
        k, hh = F.linear(x[t], weight_ih, bias_ih).chunk(2, dim=-1)
        z = torch.sigmoid(k)
        h = (1 - z) * h + z * g(hh)
        out.append(h)
    return torch.stack(out)


def mingru_case(out):
    torch.manual_seed(101)
    params = {"weight_ih_l0": uniform(2 * H, I), "bias_ih_l0": uniform(2 * H)}
    x = torch.randn(T, B, I, dtype=dt).requires_grad_(True)
    h0 = uniform(1, B, H, lo=0.2, hi=1.5)  # positive: log-space
    w = torch.randn(T, B, H, dtype=dt)
    w_final = torch.randn(B, H, dtype=dt)

    def run(form):
        y = form(x, h0[0], params["weight_ih_l0"], params["bias_ih_l0"])
        h_n = y[-1].unsqueeze(0)
        loss = (y * w).sum() + (h_n[0] * w_final).sum()
        wrt = [x, h0] + list(params.values())
        return y, h_n, loss, torch.autograd.grad(loss, wrt)

    y, h_n, loss, grads = run(mingru_log_space)
    y_seq, _, loss_seq, grads_seq = run(mingru_sequential)
    d_out = (y - y_seq).abs().max().item()
    d_grad = max((a - b).abs().max().item() for a, b in zip(grads, grads_seq))
    print(f"minGRU: log-space vs sequential: outputs {d_out:.3g}, gradients {d_grad:.3g}")
    assert d_out < 1e-12 and d_grad < 1e-12 and abs(loss - loss_seq).item() < 1e-12

    p = "mingru."
    out[p + "x"], out[p + "h0"], out[p + "w"], out[p + "w_final"] = x, h0, w, w_final
    out[p + "out"], out[p + "h_n"], out[p + "loss"] = y, h_n, loss.reshape(1)
    out[p + "grad.x"], out[p + "grad.h0"] = grads[0], grads[1]
    for (name, param), grad in zip(params.items(), grads[2:]):
        out[p + "param." + name] = param
        out[p + "grad." + name] = grad


def slstm_case(out):
    torch.manual_seed(202)
    params = {"weight_ih_l0": uniform(4 * H, I), "bias_ih_l0": uniform(4 * H),
              "weight_hh_l0": uniform(4 * H, H)}
    x = torch.randn(T, B, I, dtype=dt).requires_grad_(True)
    h0 = torch.randn(1, B, H, dtype=dt).mul(0.5).requires_grad_(True)
    c0 = torch.randn(1, B, H, dtype=dt).mul(0.5).requires_grad_(True)
    n0 = uniform(1, B, H, lo=0.5, hi=1.5)  # a normaliser: positive
    m0 = torch.randn(1, B, H, dtype=dt).mul(0.5).requires_grad_(True)
    w = torch.randn(T, B, H, dtype=dt)
    w_final = torch.randn(B, H, dtype=dt)

    h, c, n, m = h0[0], c0[0], n0[0], m0[0]
    ys, gaps = [], []
    for t in range(T):
        pre = F.linear(x[t], params["weight_ih_l0"], params["bias_ih_l0"]) + \
            h @ params["weight_hh_l0"].t()
        i_t, f_t, z_t, o_t = pre.chunk(4, dim=-1)
        m_new = torch.maximum(f_t + m, i_t)
        gaps.append((f_t + m - i_t).abs().min().item())  # away from ties: max is differentiable
        i_p = torch.exp(i_t - m_new)
        f_p = torch.exp(f_t + m - m_new)
        c = f_p * c + i_p * torch.tanh(z_t)
        n = f_p * n + i_p
        h = torch.sigmoid(o_t) * (c / n)
        m = m_new
        ys.append(h)
    assert min(gaps) > 1e-3, min(gaps)
    y = torch.stack(ys)
    loss = (y * w).sum() + (h * w_final).sum()
    loss.backward()

    p = "slstm."
    out[p + "x"], out[p + "w"], out[p + "w_final"] = x, w, w_final
    out[p + "h0"], out[p + "c0"], out[p + "n0"], out[p + "m0"] = h0, c0, n0, m0
    out[p + "out"], out[p + "loss"] = y, loss.reshape(1)
    for s, v in zip("hcnm", (h, c, n, m)):
        out[p + s + "_n"] = v.unsqueeze(0)
    out[p + "grad.x"] = x.grad
    for s, v in zip("hcnm", (h0, c0, n0, m0)):
        out[p + "grad." + s + "0"] = v.grad
    for name, param in params.items():
        out[p + "param." + name] = param
        out[p + "grad." + name] = param.grad
    print(f"sLSTM: smallest |f̃ + m - ĩ| {min(gaps):.3g}; |grad m0| max "
          f"{m0.grad.abs().max().item():.3g}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = {}
    mingru_case(out)
    slstm_case(out)
    write_safetensors(sys.argv[1], out, {"T": str(T), "B": str(B), "I": str(I), "H": str(H),
                                         "torch": torch.__version__})
    print(f"wrote {len(out)} tensors to {sys.argv[1]} (torch {torch.__version__})")
