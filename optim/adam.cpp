#include "optim/adam.hpp"

#include <cmath>

#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

namespace tapegrad {

namespace {
void check(const std::string& who, const AdamOptions& o) {
    detail::require_option(o.eps >= 0, who, "eps must be >= 0", o.eps);
    detail::require_option(o.beta1 >= 0 && o.beta1 < 1, who, "beta1 must be in [0, 1)", o.beta1);
    detail::require_option(o.beta2 >= 0 && o.beta2 < 1, who, "beta2 must be in [0, 1)", o.beta2);
}

AdamOptions as_adam(const AdamWOptions& o) {
    return {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.amsgrad, o.check_finite};
}
}  // namespace

Adam::Adam(Params params, AdamOptions options) : Adam("Adam", std::move(params), options, false) {}

Adam::Adam(std::string type_name, Params params, AdamOptions options, bool decoupled)
    : Optimizer(type_name, std::move(params), options.lr, options.weight_decay,
                options.check_finite),
      options_(options),
      decoupled_(decoupled) {
    check(type_name, options);
}

AdamW::AdamW(Params params, AdamWOptions options)
    : Adam("AdamW", std::move(params), as_adam(options), true) {}

void Adam::update(const Group& group, Variable& param, const Tensor& grad, ParamState& state) {
    const AdamOptions& o = options_;
    const double lr = group.lr, wd = group.weight_decay;
    const double t = static_cast<double>(++state.step);
    const double step_size = lr / (1 - std::pow(o.beta1, t));
    const double bc2_sqrt = std::sqrt(1 - std::pow(o.beta2, t));
    const Tensor& like = param.value();
    Tensor& m_t = state.buffer("exp_avg", like);
    Tensor& v_t = state.buffer("exp_avg_sq", like);
    Tensor* vmax_t = o.amsgrad ? &state.buffer("max_exp_avg_sq", like) : nullptr;
    dispatch(param.dtype(), [&]<class T>() {
        auto& p = param.mutable_value().mutable_xt<T>();
        Array<T> g = grad.xt<T>();
        if (decoupled_) p *= T(1 - lr * wd);  // AdamW: decay the weights
        else if (wd != 0) g = g + T(wd) * p;  // Adam: L2 penalty in the gradient
        auto& m = m_t.mutable_xt<T>();
        auto& v = v_t.mutable_xt<T>();
        m = T(o.beta1) * m + T(1 - o.beta1) * g;
        v = T(o.beta2) * v + T(1 - o.beta2) * g * g;
        Array<T> denom;
        if (vmax_t) {
            auto& vmax = vmax_t->mutable_xt<T>();
            vmax = xt::maximum(vmax, v);
            denom = xt::sqrt(vmax) / T(bc2_sqrt) + T(o.eps);
        } else {
            denom = xt::sqrt(v) / T(bc2_sqrt) + T(o.eps);
        }
        xt::noalias(p) += T(-step_size) * (m / denom);
    });
}

}  // namespace tapegrad
