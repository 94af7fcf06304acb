#include "ops/scan.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "core/tape.hpp"
#include "ops/index.hpp"
#include "ops/shape.hpp"
#include "ops/support.hpp"

namespace tapegrad {

namespace {
using namespace ops;

// The scan on arrays: T steps of `lanes` elements each, time-major. Lanes are cut into blocks
// that run in parallel; within a block, the steps run in order over contiguous lanes.
template <class T>
void scan(const T* a, const T* b, const T* h0, T* h, std::size_t steps, std::size_t lanes,
          bool reverse) {
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, lanes, 1024), [&](const auto& r) {
        const T* prev = h0;
        for (std::size_t s = 0; s < steps; ++s) {
            const std::size_t t = reverse ? steps - 1 - s : s;
            const std::size_t at = t * lanes;
            for (std::size_t l = r.begin(); l < r.end(); ++l)
                h[at + l] = a[at + l] * prev[l] + b[at + l];
            prev = h + at;
        }
    });
}

// The plain backward in one pass per lane block, nothing recorded: g_t = ∂L/∂h_t + a_next ⊙
// g_next from the last step back, with ∂b_t = g_t, ∂a_t = g_t ⊙ h_prev and ∂h0 = a_first ⊙
// g_first written as it goes (what the create_graph rule below computes with ops).
template <class T>
void scan_backward(const T* a, const T* h0, const T* h, const T* g_out, T* da, T* db, T* dh0,
                   std::size_t steps, std::size_t lanes, bool reverse) {
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, lanes, 1024), [&](const auto& r) {
        for (std::size_t s = steps; s-- > 0;) {  // s: position in the scan's own order
            const std::size_t t = reverse ? steps - 1 - s : s;
            const std::size_t at = t * lanes;
            const bool has_next = s + 1 < steps, has_prev = s > 0;
            const std::size_t next = (reverse ? t - 1 : t + 1) * lanes;
            const std::size_t prev = (reverse ? t + 1 : t - 1) * lanes;
            for (std::size_t l = r.begin(); l < r.end(); ++l) {
                const T g = g_out[at + l] + (has_next ? a[next + l] * db[next + l] : T(0));
                db[at + l] = g;
                if (da) da[at + l] = g * (has_prev ? h[prev + l] : h0[l]);
                if (!has_prev && dh0) dh0[l] = a[at + l] * g;
            }
        }
    });
}

// x shifted one step along time, the step falling off replaced by zeros: later (x_{t+1} at t)
// or earlier (x_{t-1} at t).
Variable shifted(const Variable& x, bool later, const Loc& loc) {
    const long steps = static_cast<long>(x.shape()[0]);
    Shape one = x.shape();
    one[0] = 1;
    const Variable zero = constant(Tensor::zeros(one, x.dtype()));
    if (later) return concat({narrow(x, 0, 1, steps - 1, loc), zero}, 0, loc);
    return concat({zero, narrow(x, 0, 0, steps - 1, loc)}, 0, loc);
}
}  // namespace

Variable linear_scan(const Variable& a, const Variable& b, const Variable& h0, bool reverse,
                     const Loc& loc) {
    check_binary("linear_scan", a, b, loc);
    check_binary("linear_scan", a, h0, loc);
    if (a.dim() == 0 || a.shape() != b.shape())
        fail<ShapeError>("linear_scan",
                         fmt::format("a and b must be [T, ...] of one shape, got {} and {}",
                                     to_string(a.shape()), to_string(b.shape())),
                         loc);
    const Shape lane_shape(a.shape().begin() + 1, a.shape().end());
    if (h0.shape() != lane_shape)
        fail<ShapeError>(
            "linear_scan",
            fmt::format("h0 must be {} (a's shape {} without time), got {}", to_string(lane_shape),
                        to_string(a.shape()), to_string(h0.shape())),
            loc);
    const std::size_t steps = a.shape()[0], lanes = numel(lane_shape);
    Tensor out = Tensor::empty(a.shape(), a.dtype());
    dispatch(a.dtype(), [&]<class T>() {
        scan<T>(a.value().data<T>(), b.value().data<T>(), h0.value().data<T>(),
                out.mutable_xt<T>().data(), steps, lanes, reverse);
    });
    return record(
        "linear_scan", std::move(out), {a, b, h0}, {.inputs = input_mask(0, 2), .result = true},
        [reverse](Backward& bw) {
            const Variable &a = bw.input(0), &h0 = bw.input(2), &h = bw.result();
            const Loc here = Loc::current();
            if (a.shape()[0] == 0) {  // no steps: h0 passes through untouched by any gradient
                if (bw.needs(2)) bw.add(2, constant(Tensor::zeros(h0.shape(), h0.dtype())));
                return;
            }
            if (!grad_enabled()) {  // plain backward: one fused pass
                Tensor da, db = Tensor::empty(a.shape(), a.dtype()), dh0;
                if (bw.needs(0)) da = Tensor::empty(a.shape(), a.dtype());
                if (bw.needs(2)) dh0 = Tensor::empty(h0.shape(), h0.dtype());
                dispatch(a.dtype(), [&]<class T>() {
                    scan_backward<T>(a.value().data<T>(), h0.value().data<T>(), h.value().data<T>(),
                                     bw.grad_out().value().data<T>(),
                                     da.defined() ? da.mutable_xt<T>().data() : nullptr,
                                     db.mutable_xt<T>().data(),
                                     dh0.defined() ? dh0.mutable_xt<T>().data() : nullptr,
                                     a.shape()[0], numel(h0.shape()), reverse);
                });
                if (da.defined()) bw.add(0, Variable(std::move(da)));
                if (bw.needs(1)) bw.add(1, Variable(std::move(db)));
                if (dh0.defined()) bw.add(2, Variable(std::move(dh0)));
                return;
            }
            // g_t = ∂L/∂h_t + a_{t+1} g_{t+1}: the scan the other way, over the shifted a
            const Variable g =
                linear_scan(shifted(a, !reverse, here), bw.grad_out(),
                            constant(Tensor::zeros(h0.shape(), h0.dtype())), !reverse, here);
            const long last = static_cast<long>(a.shape()[0]) - 1;
            if (bw.needs(0)) {  // h_{t-1}, h0 at the first step
                const Variable h_prev =
                    reverse ? concat({narrow(h, 0, 1, last, here), unsqueeze(h0, 0)}, 0, here)
                            : concat({unsqueeze(h0, 0), narrow(h, 0, 0, last, here)}, 0, here);
                bw.add(0, g * h_prev);
            }
            if (bw.needs(1)) bw.add(1, g);
            if (bw.needs(2)) {
                const long first = reverse ? last : 0;
                bw.add(2, select(a, 0, first, here) * select(g, 0, first, here));
            }
        },
        loc);
}

}  // namespace tapegrad
