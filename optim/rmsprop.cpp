#include "optim/rmsprop.hpp"

#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

namespace tapegrad {

RMSprop::RMSprop(Params params, RMSpropOptions options)
    : Optimizer("RMSprop", std::move(params), options.lr, options.weight_decay,
                options.check_finite),
      options_(options) {
    detail::require_option(options.eps >= 0, "RMSprop", "eps must be >= 0", options.eps);
    detail::require_option(options.momentum >= 0, "RMSprop", "momentum must be >= 0",
                           options.momentum);
    detail::require_option(options.alpha >= 0, "RMSprop", "alpha must be >= 0", options.alpha);
}

void RMSprop::update(const Group& group, Variable& param, const Tensor& grad, ParamState& state) {
    const RMSpropOptions& o = options_;
    ++state.step;
    const Tensor& like = param.value();
    Tensor& sq_t = state.buffer("square_avg", like);
    Tensor* avg_t = o.centered ? &state.buffer("grad_avg", like) : nullptr;
    Tensor* buf_t = o.momentum > 0 ? &state.buffer("momentum_buffer", like) : nullptr;
    dispatch(param.dtype(), [&]<class T>() {
        auto& p = param.mutable_value().mutable_xt<T>();
        Array<T> g = grad.xt<T>();
        if (group.weight_decay != 0) g = g + T(group.weight_decay) * p;
        auto& sq = sq_t.mutable_xt<T>();
        sq = T(o.alpha) * sq + T(1 - o.alpha) * g * g;
        Array<T> denom;
        if (avg_t) {
            // the variance estimate: E[g^2] - E[g]^2
            auto& a = avg_t->mutable_xt<T>();
            a = T(o.alpha) * a + T(1 - o.alpha) * g;
            denom = xt::sqrt(sq - a * a) + T(o.eps);
        } else {
            denom = xt::sqrt(sq) + T(o.eps);
        }
        if (buf_t) {
            auto& b = buf_t->mutable_xt<T>();
            b = T(o.momentum) * b + g / denom;
            xt::noalias(p) += T(-group.lr) * b;
        } else {
            xt::noalias(p) += T(-group.lr) * (g / denom);
        }
    });
}

}  // namespace tapegrad
