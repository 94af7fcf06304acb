// Scans over time: recurrences that are linear in the state, h_t = a_t ⊙ h_{t-1} + b_t, as one
// op for the whole sequence (one tape entry whatever T), the form minGRU, minLSTM, LRU and
// Mamba-style state spaces train in.
#pragma once

#include "ops/arith.hpp"

namespace tapegrad {

// h_t = a_t ⊙ h_{t-1} + b_t for t = 0 .. T-1, from h_{-1} = h0; with reverse, from the end:
// h_t = a_t ⊙ h_{t+1} + b_t for t = T-1 .. 0, from h_T = h0. a and b are [T, ...] of one shape,
// h0 that shape without its first axis; the result is every h_t, [T, ...]. The lanes (the
// elements of one step) run in parallel, each in time order, so results are the same for any
// thread count. The backward is itself a scan, the other way:
//   g_t = ∂L/∂h_t + a_{t+1} ⊙ g_{t+1};  ∂b_t = g_t;  ∂a_t = g_t ⊙ h_{t-1};  ∂h0 = a_0 ⊙ g_0.
Variable linear_scan(const Variable& a, const Variable& b, const Variable& h0, bool reverse = false,
                     const Loc& loc = Loc::current());

}  // namespace tapegrad
