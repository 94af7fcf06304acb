#include "core/variable.hpp"

#include "core/tape.hpp"

#include <fmt/format.h>

namespace tapegrad {

Variable::Variable(Tensor value, bool requires_grad, std::string name)
    : impl_(make_cached<detail::VarImpl>()) {
    if (!value.defined()) throw ValueError("Variable: the value tensor is undefined");
    impl_->value = std::move(value);
    impl_->requires_grad = requires_grad;
    impl_->name = std::move(name);
}

void Variable::require_defined(const char* what) const {
    if (!impl_) throw ValueError(std::string("Variable::") + what + ": the variable is undefined");
}

void Variable::value_unavailable() const {
    require_defined("value");
    throw GraphError(
        fmt::format("value: the value of a {} variable was released after forward, "
                    "since no backward rule declared it reads it; an op's "
                    "Reads (see record) leave out an input it reads",
                    to_string(impl_->released_shape)));
}

Variable& Variable::set_requires_grad(bool on) {
    require_defined("set_requires_grad");
    if (!is_leaf())
        throw GraphError(
            "set_requires_grad: only leaves can change requires_grad; use detach() "
            "to cut a recorded variable from its graph");
    impl_->requires_grad = on;
    return *this;
}

const std::string& Variable::name() const {
    require_defined("name");
    return impl_->name;
}

Variable& Variable::set_name(std::string name) {
    require_defined("set_name");
    impl_->name = std::move(name);
    return *this;
}

const Tensor& Variable::grad() const {
    static const Tensor none;
    require_defined("grad");
    return impl_->grad ? impl_->grad->value : none;
}

Variable Variable::grad_variable() const {
    require_defined("grad_variable");
    return impl_->grad ? Variable(impl_->grad) : Variable();
}

void Variable::zero_grad() {
    require_defined("zero_grad");
    impl_->grad.reset();
}

void Variable::set_grad(const Tensor& grad) {
    require_defined("set_grad");
    if (!grad.defined()) {
        impl_->grad.reset();
        return;
    }
    if (grad.shape() != shape() || grad.dtype() != dtype())
        throw ShapeError(fmt::format("set_grad: gradient {} {} does not match the variable {} {}",
                                     to_string(grad.shape()), tapegrad::name(grad.dtype()),
                                     to_string(shape()), tapegrad::name(dtype())));
    impl_->grad = Variable(grad).impl_;
}

Tensor& Variable::mutable_value() {
    require_defined("mutable_value");
    if (!is_leaf())
        throw GraphError(
            "mutable_value: only a leaf's value may be changed in place; a recorded "
            "value may be needed by backward");
    dispatch(impl_->value.dtype(), [&]<class T>() { impl_->value.mutable_xt<T>(); });
    return impl_->value;
}

Variable Variable::detach() const {
    require_defined("detach");
    return Variable(impl_->value);
}

Variable constant(double value, DType dtype) { return Variable(Tensor::scalar(value, dtype)); }
Variable constant(const Tensor& value) { return Variable(value); }

// ---- The entry points of the reverse sweep, which core/tape.cpp runs

namespace {
std::string describe(const Variable& v) {
    return fmt::format("{} {}", to_string(v.shape()), name(v.dtype()));
}

Variable make_seed(const Variable& root, const Tensor& grad_out, const char* what) {
    if (!root.defined()) throw GraphError(std::string(what) + ": the variable is undefined");
    if (!root.requires_grad())
        throw GraphError(fmt::format(
            "{}: the variable ({}) does not require grad: no input of its graph requires grad, or "
            "it was computed under NoGradGuard",
            what, describe(root)));
    if (!grad_out.defined()) {
        if (root.numel() != 1)
            throw GraphError(
                fmt::format("{}: the output {} is not a scalar; pass grad_out of that shape", what,
                            describe(root)));
        return Variable(Tensor::ones(root.shape(), root.dtype()));
    }
    if (grad_out.shape() != root.shape() || grad_out.dtype() != root.dtype())
        throw ShapeError(fmt::format("{}: grad_out {} {} does not match the output {}", what,
                                     to_string(grad_out.shape()), name(grad_out.dtype()),
                                     describe(root)));
    return Variable(grad_out);
}
}  // namespace

void Variable::backward(const Tensor& grad_out, BackwardOptions options) const {
    Variable seed = make_seed(*this, grad_out, "backward");
    if (is_leaf()) {
        auto& g = impl_->grad;
        Variable acc = g ? Variable(g) : Variable();
        g.reset();
        g = detail::accumulate(std::move(acc), seed, false).impl_ptr();
        return;
    }
    Tape::LeafGrads leaves;
    current_tape().run_backward(*this, seed, {}, options, &leaves);
    for (std::size_t k = 0; k < leaves.leaves.size(); ++k) {
        auto& g = leaves.leaves[k]->grad;
        Variable acc = g ? Variable(g) : Variable();
        g.reset();
        g = detail::accumulate(std::move(acc), leaves.grads[k], options.create_graph).impl_ptr();
    }
}

std::vector<Variable> grad(const Variable& root, std::span<const Variable> wanted,
                           const Tensor& grad_out, BackwardOptions options) {
    Variable seed = make_seed(root, grad_out, "grad");
    if (root.is_leaf()) {
        std::vector<Variable> out(wanted.size());
        for (std::size_t k = 0; k < wanted.size(); ++k)
            if (wanted[k].impl() == root.impl()) out[k] = seed;
        return out;
    }
    return current_tape().run_backward(root, seed, wanted, options, nullptr);
}

std::vector<Variable> grad(const Variable& root, std::initializer_list<Variable> wanted,
                           const Tensor& grad_out, BackwardOptions options) {
    return grad(root, std::span<const Variable>(wanted.begin(), wanted.size()), grad_out, options);
}

}  // namespace tapegrad
