#include "ops/loss.hpp"

#include <cmath>

#include "core/tape.hpp"
#include "ops/nn.hpp"
#include "ops/reduce.hpp"
#include "ops/support.hpp"
#include "ops/unary.hpp"

namespace tapegrad {

namespace {
Variable reduce(const Variable& per_element, Reduction reduction, const Loc& loc) {
    switch (reduction) {
        case Reduction::mean: return mean(per_element, loc);
        case Reduction::sum: return sum(per_element, loc);
        case Reduction::none: break;
    }
    return per_element;
}

void check_same_shape(const char* op, const Variable& a, const Variable& b, const Loc& loc) {
    ops::check_binary(op, a, b, loc);
    if (a.shape() != b.shape())
        fail<ShapeError>(op,
                         fmt::format("input {} and target {} must have the same shape",
                                     to_string(a.shape()), to_string(b.shape())),
                         loc);
}
}  // namespace

Variable mse_loss(const Variable& input, const Variable& target, Reduction reduction,
                  const Loc& loc) {
    check_same_shape("mse_loss", input, target, loc);
    const Variable d = sub(input, target, loc);
    return reduce(mul(d, d, loc), reduction, loc);
}

Variable nll_loss(const Variable& log_probs, const std::vector<std::int64_t>& targets,
                  std::int64_t ignore_index, Reduction reduction, const Loc& loc) {
    ops::require_defined("nll_loss", log_probs, loc);
    if (log_probs.dim() != 2)
        fail<ShapeError>(
            "nll_loss",
            fmt::format("log_probs must be [N, C], got {}", to_string(log_probs.shape())), loc);
    const std::size_t n = log_probs.shape()[0], c = log_probs.shape()[1];
    if (targets.size() != n)
        fail<ShapeError>("nll_loss",
                         fmt::format("{} targets for log_probs {}", targets.size(),
                                     to_string(log_probs.shape())),
                         loc);
    // The loss is -sum(log_probs * pick) with pick one-hot at each kept target, so its gradient
    // (and the gradient of that) comes from mul and sum.
    Tensor pick = Tensor::zeros({n, c}, log_probs.dtype());
    std::size_t kept = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const std::int64_t t = targets[i];
        if (t == ignore_index) continue;
        if (t < 0 || static_cast<std::size_t>(t) >= c)
            fail<ValueError>("nll_loss",
                             fmt::format("target {} at position {} is out of range for "
                                         "{} classes",
                                         t, i, c),
                             loc);
        pick.set_flat(i * c + static_cast<std::size_t>(t), 1.0);
        ++kept;
    }
    const Variable per_row = neg(sum(mul(log_probs, constant(pick), loc), {1}, false, loc), loc);
    if (reduction == Reduction::mean) {
        if (kept == 0)
            fail<ValueError>("nll_loss", "every target equals ignore_index: the mean is undefined",
                             loc);
        return sum(per_row, loc) * (1.0 / static_cast<double>(kept));
    }
    return reduce(per_row, reduction, loc);
}

Variable cross_entropy(const Variable& logits, const std::vector<std::int64_t>& targets,
                       std::int64_t ignore_index, Reduction reduction, const Loc& loc) {
    ops::require_defined("cross_entropy", logits, loc);
    if (logits.dim() != 2)
        fail<ShapeError>("cross_entropy",
                         fmt::format("logits must be [N, C], got {}", to_string(logits.shape())),
                         loc);
    return nll_loss(log_softmax(logits, 1, loc), targets, ignore_index, reduction, loc);
}

Variable binary_cross_entropy_with_logits(const Variable& logits, const Variable& target,
                                          Reduction reduction, const Loc& loc) {
    check_same_shape("binary_cross_entropy_with_logits", logits, target, loc);
    Tensor out = dispatch(logits.dtype(), [&]<class T>() {
        const auto& x = logits.value().xt<T>();
        const auto& y = target.value().xt<T>();
        return Tensor(Array<T>(xt::maximum(x, T(0)) - x * y + xt::log1p(xt::exp(-xt::abs(x)))));
    });
    Variable per_element = record(
        "binary_cross_entropy_with_logits", std::move(out), {logits, target},
        [](Backward& bw) {
            // d/dx = sigmoid(x) - y,  d/dy = -x
            if (bw.needs(0)) bw.add(0, bw.grad_out() * (sigmoid(bw.input(0)) - bw.input(1)));
            if (bw.needs(1)) bw.add(1, neg(bw.grad_out() * bw.input(0)));
        },
        loc);
    return reduce(per_element, reduction, loc);
}

}  // namespace tapegrad
