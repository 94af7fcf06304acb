#!/usr/bin/python3
"""Reference training runs in PyTorch, float64, for tests/test_training_parity.cpp (issue #31:
"it trains the same, not only computes the same").

Run once with Debian's PyTorch (python3-torch 1.13); the output is committed so the tests need no
PyTorch:

    /usr/bin/python3 tests/reference/make_training_reference.py \
        tests/reference/training_reference.safetensors

The model, for kind in (lstm, gru): Embedding(V, E) -> nn.LSTM / nn.GRU (E, H, 1 layer) ->
Linear(H, V), logits at every position, cross-entropy (mean over all T*B positions),
clip_grad_norm_(1.0), Adam(lr=1e-3), STEPS steps. The LSTM's forget bias is set as PyTorch
scripts do: bias_ih_l0[H:2H] = 1 (bias_hh_l0 keeps its random slice). PyTorch's GRU is tapegrad's
GRUVariant::reset_after.

The task, the copy task: K symbols uniform in [2, V), blanks (0), the delimiter (1) at position
T - K - 1, blanks; the targets are blanks up to the delimiter, then the K symbols. Five sixths of
the targets are blanks: the first ~60 steps' gradients exceed MAX_NORM and are clipped.

Contents:
  batch.ids, batch.targets     U8  [STEPS, T, B]  (tapegrad reads integers as float64)
  <kind>.init.<name>           F64 initial parameters, PyTorch names: emb.weight,
                                   rnn.weight_ih_l0, ..., head.weight, head.bias
  <kind>.final.<name>          F64 parameters after the last step
  <kind>.loss                  F64 [STEPS]  loss of each step, before its update
  <kind>.grad_norm             F64 [STEPS]  total gradient norm returned by clip_grad_norm_
"""
import sys

import torch
import torch.nn as nn

from safetensors_io import write_safetensors

V, E, H, T, B = 10, 8, 16, 12, 16
K = 2
STEPS = 300
LR, MAX_NORM = 1e-3, 1.0


def make_batches():
    g = torch.Generator().manual_seed(31)
    symbols = torch.randint(2, V, (STEPS, K, B), generator=g)
    ids = torch.zeros(STEPS, T, B, dtype=torch.int64)
    targets = torch.zeros_like(ids)
    ids[:, :K, :] = symbols
    ids[:, T - K - 1, :] = 1
    targets[:, T - K:, :] = symbols
    return ids, targets


class Model(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.emb = nn.Embedding(V, E)
        self.rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(E, H, num_layers=1)
        self.head = nn.Linear(H, V)
        if kind == "lstm":
            with torch.no_grad():
                self.rnn.bias_ih_l0[H:2 * H].fill_(1.0)

    def forward(self, ids):  # ids [T, B] -> logits [T, B, V]
        y, _ = self.rnn(self.emb(ids))
        return self.head(y)


def train(kind, ids, targets, out):
    torch.manual_seed({"lstm": 1, "gru": 2}[kind])
    model = Model(kind).double()
    for name, p in model.named_parameters():
        out[f"{kind}.init.{name}"] = p.detach().clone()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    losses, norms = [], []
    for s in range(STEPS):
        logits = model(ids[s])
        loss = nn.functional.cross_entropy(logits.reshape(T * B, V), targets[s].reshape(T * B))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norms.append(nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM).item())
        opt.step()
        losses.append(loss.item())
    for name, p in model.named_parameters():
        out[f"{kind}.final.{name}"] = p.detach().clone()
    out[f"{kind}.loss"] = torch.tensor(losses, dtype=torch.float64)
    out[f"{kind}.grad_norm"] = torch.tensor(norms, dtype=torch.float64)
    print(f"{kind}: loss {losses[0]:.6f} -> {losses[-1]:.6f}, clipped at {sum(n > MAX_NORM for n in norms)} "
          f"of {STEPS} steps")


if __name__ == "__main__":
    torch.set_num_threads(1)
    ids, targets = make_batches()
    out = {"batch.ids": ids.to(torch.uint8), "batch.targets": targets.to(torch.uint8)}
    for kind in ("lstm", "gru"):
        train(kind, ids, targets, out)
    meta = {k: str(v) for k, v in dict(V=V, E=E, H=H, T=T, B=B, K=K, steps=STEPS, lr=LR,
                                       max_norm=MAX_NORM).items()}
    meta["torch"] = torch.__version__
    write_safetensors(sys.argv[1], out, meta)
    print(f"wrote {len(out)} tensors to {sys.argv[1]} (torch {torch.__version__})")
