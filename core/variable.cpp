#include "core/variable.hpp"

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
    throw GraphError(fmt::format("value: the value of a {} variable was released after forward, "
                                 "since no backward rule declared it reads it; an op's "
                                 "reads_only declaration is missing an input",
                                 to_string(impl_->released_shape)));
}

Variable& Variable::set_requires_grad(bool on) {
    require_defined("set_requires_grad");
    if (!is_leaf())
        throw GraphError("set_requires_grad: only leaves can change requires_grad; use detach() "
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
        throw GraphError("mutable_value: only a leaf's value may be changed in place; a recorded "
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

}  // namespace tapegrad
