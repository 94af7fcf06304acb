#include "optim/sgd.hpp"

#include <cmath>

#include <xtensor/xarray.hpp>
#include <xtensor/xnoalias.hpp>

namespace tapegrad {

namespace {
double required_lr(double lr) {
    if (std::isnan(lr))
        throw ValueError("SGD: lr must be given (SGDOptions{.lr = ...}); it has no default");
    return lr;
}
}  // namespace

SGD::SGD(Params params, SGDOptions options)
    : Optimizer("SGD", std::move(params), required_lr(options.lr), options.weight_decay,
                options.check_finite),
      options_(options) {
    detail::require_option(options.momentum >= 0, "SGD", "momentum must be >= 0", options.momentum);
    if (options.nesterov && (options.momentum <= 0 || options.dampening != 0))
        throw ValueError("SGD: nesterov needs momentum > 0 and dampening == 0");
}

void SGD::update(const Group& group, Variable& param, const Tensor& grad, ParamState& state) {
    const SGDOptions& o = options_;
    ++state.step;
    dispatch(param.dtype(), [&]<class T>() {
        auto& p = param.mutable_value().mutable_xt<T>();
        Array<T> d = grad.xt<T>();
        if (group.weight_decay != 0) d = d + T(group.weight_decay) * p;
        if (o.momentum != 0) {
            if (!state.has("momentum_buffer")) {
                state.buffers.emplace("momentum_buffer", Tensor(d));
            } else {
                auto& b = state.buffers.at("momentum_buffer").mutable_xt<T>();
                b = T(o.momentum) * b + T(1 - o.dampening) * d;
            }
            const auto& b = state.buffers.at("momentum_buffer").xt<T>();
            if (o.nesterov) d = d + T(o.momentum) * b;
            else d = b;
        }
        xt::noalias(p) += T(-group.lr) * d;
    });
}

}  // namespace tapegrad
