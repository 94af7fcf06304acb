#include "optim/adagrad.hpp"

#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

namespace tapegrad {

Adagrad::Adagrad(Params params, AdagradOptions options)
    : Optimizer("Adagrad", std::move(params), options.lr, options.weight_decay,
                options.check_finite),
      options_(options) {
    detail::require_option(options.lr_decay >= 0, "Adagrad", "lr_decay must be >= 0",
                           options.lr_decay);
    detail::require_option(options.initial_accumulator_value >= 0, "Adagrad",
                           "initial_accumulator_value must be >= 0",
                           options.initial_accumulator_value);
    detail::require_option(options.eps >= 0, "Adagrad", "eps must be >= 0", options.eps);
}

void Adagrad::update(const Group& group, Variable& param, const Tensor& grad, ParamState& state) {
    const AdagradOptions& o = options_;
    const double t = static_cast<double>(++state.step);
    const double clr = group.lr / (1 + (t - 1) * o.lr_decay);
    Tensor& sum_t = state.buffer("sum", param.value(), o.initial_accumulator_value);
    dispatch(param.dtype(), [&]<class T>() {
        auto& p = param.mutable_value().mutable_xt<T>();
        Array<T> g = grad.xt<T>();
        if (group.weight_decay != 0) g = g + T(group.weight_decay) * p;
        auto& s = sum_t.mutable_xt<T>();
        s = s + g * g;
        xt::noalias(p) += T(-clr) * (g / (xt::sqrt(s) + T(o.eps)));
    });
}

}  // namespace tapegrad
