#include "ops/loss.hpp"

#include <cmath>
#include <string>
#include <vector>

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

// logits' shape without its last (class) axis: one label per row. Checks that logits have
// that axis, and at least one class.
Shape label_shape(const Variable& logits, const Loc& loc) {
    ops::require_defined("accuracy", logits, loc);
    if (logits.dim() == 0 || logits.shape().back() == 0)
        fail<ShapeError>("accuracy",
                         fmt::format("logits must be [..., C] with C >= 1 classes, got {}",
                                     ops::describe(logits.value())),
                         loc);
    Shape rows = logits.shape();
    rows.pop_back();
    return rows;
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

Variable nll_loss(const Variable& log_probs, const Tensor& targets, std::int64_t ignore_index,
                  Reduction reduction, const Loc& loc) {
    return nll_loss(log_probs, ops::int64_values("nll_loss", "targets", targets, 1, loc),
                    ignore_index, reduction, loc);
}

Variable cross_entropy(const Variable& logits, const Tensor& targets, std::int64_t ignore_index,
                       Reduction reduction, const Loc& loc) {
    return cross_entropy(logits, ops::int64_values("cross_entropy", "targets", targets, 1, loc),
                         ignore_index, reduction, loc);
}

Variable accuracy(const Variable& logits, const Tensor& labels, const Loc& loc) {
    const Shape rows = label_shape(logits, loc);
    std::vector<std::int64_t> values = ops::int64_values("accuracy", "labels", labels, -1, loc);
    if (labels.shape() != rows)
        fail<ShapeError>(
            "accuracy",
            fmt::format("labels {} for logits {}: one label per row, shape {}",
                        to_string(labels.shape()), to_string(logits.shape()), to_string(rows)),
            loc);
    return accuracy(logits, values, loc);
}

Variable accuracy(const Variable& logits, const std::vector<std::int64_t>& labels, const Loc& loc) {
    const Shape rows = label_shape(logits, loc);
    const std::size_t n = numel(rows), c = logits.shape().back();
    if (labels.size() != n)
        fail<ShapeError>("accuracy",
                         fmt::format("{} labels for logits {} ({} rows)", labels.size(),
                                     to_string(logits.shape()), n),
                         loc);
    if (n == 0)
        fail<ValueError>("accuracy",
                         fmt::format("logits {} have no rows: the fraction is undefined",
                                     to_string(logits.shape())),
                         loc);
    for (std::size_t i = 0; i < n; ++i)
        if (labels[i] < 0 || static_cast<std::size_t>(labels[i]) >= c)
            fail<ValueError>("accuracy",
                             fmt::format("label {} at position {} is out of range for {} classes",
                                         labels[i], i, c),
                             loc);
    const Tensor predicted = argmax(logits, -1, false, loc).value();
    std::size_t hits = 0;
    for (std::size_t i = 0; i < n; ++i) hits += predicted.flat(i) == static_cast<double>(labels[i]);
    return constant(static_cast<double>(hits) / static_cast<double>(n), logits.dtype());
}

std::vector<std::int64_t> detail::label_values(const Variable& logits, const Variable& labels,
                                               const Loc& loc) {
    const Shape rows = label_shape(logits, loc);
    ops::require_defined("accuracy", labels, loc);
    if (labels.shape() != rows)
        fail<ShapeError>(
            "accuracy",
            fmt::format("labels {} for logits {}: expected labels {} (logits' shape "
                        "without the class axis)",
                        to_string(labels.shape()), to_string(logits.shape()), to_string(rows)),
            loc);
    const Tensor& t = labels.value();
    std::vector<std::int64_t> ints(t.numel());
    for (std::size_t i = 0; i < ints.size(); ++i) {
        const double v = t.flat(i);
        if (!(std::floor(v) == v) || std::abs(v) > 9e15)
            fail<ValueError>(
                "accuracy",
                fmt::format("label {} at {} is not an integer", v, ops::coords(i, rows)), loc);
        ints[i] = static_cast<std::int64_t>(v);
    }
    return ints;
}

}  // namespace tapegrad
