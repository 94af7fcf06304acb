#include "ops/nn.hpp"

#include <cmath>

#include "core/tape.hpp"
#include "ops/elementwise.hpp"
#include "ops/reduce.hpp"
#include "ops/support.hpp"
#include "ops/unary.hpp"

namespace tapegrad {

namespace {
// x viewed as [outer, n, inner] around `axis`; f(row pointer, stride, n) per (outer, inner).
template <class T, class F>
void for_each_lane(const Shape& shape, std::size_t axis, F&& f) {
    std::size_t outer = 1, inner = 1;
    for (std::size_t d = 0; d < axis; ++d) outer *= shape[d];
    for (std::size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
    const std::size_t n = shape[axis];
    for (std::size_t o = 0; o < outer; ++o)
        for (std::size_t i = 0; i < inner; ++i) f(o * n * inner + i, inner, n);
}

// The normalised exponential along an axis: log_softmax when `log` is set, else softmax.
Tensor softmax_forward(const Tensor& x, std::size_t axis, bool log) {
    return dispatch(x.dtype(), [&]<class T>() {
        const T* in = x.xt<T>().data();
        auto out = Array<T>::from_shape(x.shape());
        T* o = out.data();
        for_each_lane<T>(x.shape(), axis,
                         [&](std::size_t start, std::size_t stride, std::size_t n) {
                             T m = -INFINITY;
                             for (std::size_t k = 0; k < n; ++k)
                                 m = std::max(m, in[start + k * stride]);
                             if (!std::isfinite(m))
                                 m = 0;  // all -inf (or inf/nan): let the arithmetic say so
                             T s = 0;
                             for (std::size_t k = 0; k < n; ++k)
                                 s += std::exp(in[start + k * stride] - m);
                             const T log_s = std::log(s);
                             for (std::size_t k = 0; k < n; ++k) {
                                 const T z = in[start + k * stride] - m;
                                 o[start + k * stride] = log ? z - log_s : std::exp(z) / s;
                             }
                         });
        return Tensor(std::move(out));
    });
}
}  // namespace

Variable log_softmax(const Variable& x, long axis, const Loc& loc) {
    ops::require_defined("log_softmax", x, loc);
    const std::size_t a = ops::normalize_axis("log_softmax", axis, x.dim(), loc);
    return record(
        "log_softmax", softmax_forward(x.value(), a, true), {x},
        [a](Backward& bw) {
            // d/dx = g - softmax(x) * sum(g)
            const long ax = static_cast<long>(a);
            bw.add(0, bw.grad_out() - exp(bw.result()) * sum(bw.grad_out(), {ax}, true));
        },
        loc);
}

Variable softmax(const Variable& x, long axis, const Loc& loc) {
    ops::require_defined("softmax", x, loc);
    const std::size_t a = ops::normalize_axis("softmax", axis, x.dim(), loc);
    return record(
        "softmax", softmax_forward(x.value(), a, false), {x},
        [a](Backward& bw) {
            // d/dx = s * (g - sum(g * s))
            const Variable s = bw.result();
            const long ax = static_cast<long>(a);
            bw.add(0, s * (bw.grad_out() - sum(bw.grad_out() * s, {ax}, true)));
        },
        loc);
}

Variable layer_norm(const Variable& x, std::size_t normalized_dims, const Variable& weight,
                    const Variable& bias, double eps, const Loc& loc) {
    ops::require_defined("layer_norm", x, loc);
    if (normalized_dims == 0 || normalized_dims > x.dim())
        fail<ShapeError>("layer_norm",
                         fmt::format("cannot normalise over the last {} axes of {}",
                                     normalized_dims, to_string(x.shape())),
                         loc);
    const Shape trailing(x.shape().end() - static_cast<long>(normalized_dims), x.shape().end());
    for (const Variable* p : {&weight, &bias}) {
        if (!p->defined()) continue;
        ops::check_binary("layer_norm", x, *p, loc);
        if (p->shape() != trailing)
            fail<ShapeError>("layer_norm",
                             fmt::format("{} is {}, expected {} (the normalised "
                                         "axes of {})",
                                         p == &weight ? "weight" : "bias", to_string(p->shape()),
                                         to_string(trailing), to_string(x.shape())),
                             loc);
    }
    if (!(eps >= 0))
        fail<ValueError>("layer_norm", fmt::format("eps must be >= 0, got {}", eps), loc);
    std::vector<long> axes;
    for (std::size_t d = x.dim() - normalized_dims; d < x.dim(); ++d)
        axes.push_back(static_cast<long>(d));
    // y = (x - mean) / sqrt(var + eps) with the biased variance
    const Variable centred = x - mean(x, axes, true, loc);
    Variable y = centred / sqrt(mean(centred * centred, axes, true, loc) + eps, loc);
    if (weight.defined()) y = y * weight;
    if (bias.defined()) y = y + bias;
    return y;
}

Variable dropout(const Variable& x, double p, bool training, Generator& gen, const Loc& loc) {
    ops::require_defined("dropout", x, loc);
    if (!(p >= 0.0 && p <= 1.0))
        fail<ValueError>("dropout", fmt::format("probability must be in [0, 1], got {}", p), loc);
    if (!training || p == 0.0) return x;
    Tensor mask = Tensor::empty(x.shape(), x.dtype());
    const double keep_scale = p == 1.0 ? 0.0 : 1.0 / (1.0 - p);
    dispatch(x.dtype(), [&]<class T>() {
        for (auto& m : mask.mutable_xt<T>())
            m = gen.uniform() < p ? T(0) : static_cast<T>(keep_scale);
    });
    return mul(x, constant(mask), loc);
}

}  // namespace tapegrad
