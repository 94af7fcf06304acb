#include "optim/clip.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>

namespace tapegrad {

namespace {

// grad = f(grad) for every parameter with a gradient; f receives the xtensor array.
template <class F>
void transform_grads(const std::vector<Variable>& params, F&& f) {
    for (const auto& p : params) {
        if (!p.defined() || !p.grad().defined()) continue;
        Tensor g = p.grad();
        dispatch(g.dtype(), [&]<class T>() { f(g.mutable_xt<T>()); });
        Variable(p).set_grad(g);
    }
}

// The p-norm of a range of numbers; NaN if any is NaN.
template <class R>
double p_norm(const R& values, double p) {
    double acc = 0;
    for (auto x : values) {
        const double a = std::abs(static_cast<double>(x));
        if (std::isnan(a)) return a;
        if (std::isinf(p)) acc = std::max(acc, a);
        else acc += p == 2 ? a * a : std::pow(a, p);
    }
    if (std::isinf(p)) return acc;
    return p == 2 ? std::sqrt(acc) : std::pow(acc, 1.0 / p);
}

}  // namespace

double clip_grad_norm(const std::vector<Variable>& params, double max_norm, double norm_type,
                      bool error_if_nonfinite, const std::source_location& loc) {
    if (!(norm_type > 0))
        fail<ValueError>("clip_grad_norm",
                         fmt::format("norm_type must be > 0 or infinity, got {}", norm_type), loc);
    // as torch: the norm of the vector of each gradient's norm
    std::vector<double> norms;
    for (const auto& p : params) {
        if (!p.defined() || !p.grad().defined()) continue;
        const Tensor& g = p.grad();
        norms.push_back(
            dispatch(g.dtype(), [&]<class T>() { return p_norm(g.xt<T>(), norm_type); }));
    }
    const double total = p_norm(norms, norm_type);
    if (error_if_nonfinite && !std::isfinite(total))
        fail<ValueError>(
            "clip_grad_norm",
            fmt::format("the total norm of order {} of the gradients is {}, so they cannot be "
                        "clipped (pass error_if_nonfinite = false to scale them anyway)",
                        norm_type, total),
            loc);
    // min(coef, 1) keeps a NaN coefficient, as torch.clamp does
    const double coef = std::min(max_norm / (total + 1e-6), 1.0);
    if (coef != 1.0)
        transform_grads(params,
                        [&]<class A>(A& g) { g *= static_cast<typename A::value_type>(coef); });
    return total;
}

void clip_grad_value(const std::vector<Variable>& params, double clip_value,
                     const std::source_location& loc) {
    if (!(clip_value >= 0))
        fail<ValueError>("clip_grad_value",
                         fmt::format("clip_value must be >= 0, got {}", clip_value), loc);
    transform_grads(params, [&]<class A>(A& g) {
        using T = typename A::value_type;
        g = xt::clip(g, T(-clip_value), T(clip_value));
    });
}

}  // namespace tapegrad
