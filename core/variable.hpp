// Variable: a tensor value plus its place in the autodiff graph.
//  - A leaf (a parameter, an input) owns `grad`, which backward() accumulates into until
//    zero_grad().
//  - A result of an op recorded on a tape knows its tape entry; its gradient lives on the
//    tape only while backward runs.
//  - Under NoGradGuard, or when no input requires grad, an op's result is a plain value.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.hpp"

namespace tapegrad {

class Tape;
class Variable;

struct BackwardOptions {
    bool retain_graph = false;  // keep the graph for another backward over it
    bool create_graph = false;  // record the backward pass itself (gradients of gradients)
};

namespace detail {
struct VarImpl {
    Tensor value;
    bool requires_grad = false;
    std::shared_ptr<VarImpl> grad;  // leaves only: accumulated gradient
    std::string name;               // optional, used in error messages
    // Set when the value was recorded on a tape:
    Tape* tape = nullptr;
    std::uint64_t generation = 0;
    std::uint32_t index = 0;   // its entry
    std::uint32_t output = 0;  // which of the entry's results it is
    // Set when the tape dropped the value after forward because no backward rule reads it
    // and nothing outside the tape refers to the variable; shape and dtype stay known.
    bool released = false;
    Shape released_shape;
    DType released_dtype = DType::float32;
};
}  // namespace detail

class Variable {
public:
    Variable() = default;  // undefined
    // A leaf holding `value`.
    explicit Variable(Tensor value, bool requires_grad = false, std::string name = {});

    bool defined() const { return impl_ != nullptr; }
    const Tensor& value() const {
        if (!impl_ || impl_->released) [[unlikely]]
            value_unavailable();
        return impl_->value;
    }
    DType dtype() const { return released() ? impl_->released_dtype : value().dtype(); }
    const Shape& shape() const { return released() ? impl_->released_shape : value().shape(); }
    std::size_t dim() const { return shape().size(); }
    std::size_t numel() const { return tapegrad::numel(shape()); }
    double item() const { return value().item(); }

    bool requires_grad() const { return impl_ && impl_->requires_grad; }
    bool is_leaf() const { return impl_ && impl_->tape == nullptr; }
    // The tape dropped this recorded variable's value (see Tape: values no backward reads).
    bool released() const { return impl_ && impl_->released; }
    // Leaves only: turn gradient tracking on or off.
    Variable& set_requires_grad(bool on = true);
    const std::string& name() const;
    Variable& set_name(std::string name);

    // The accumulated gradient of a leaf (undefined Tensor until a backward reaches it).
    const Tensor& grad() const;
    // The same, as a Variable: after backward({.create_graph = true}) it is part of the graph.
    Variable grad_variable() const;
    void zero_grad();  // forget the gradient (set to none, as PyTorch's default)
    void set_grad(const Tensor& grad);

    // A leaf's value, writable (optimizer updates). Copies first if the storage is shared.
    Tensor& mutable_value();

    Variable detach() const;  // same value, no graph, does not require grad

    // Reverse-mode sweep from this variable. A non-scalar needs an explicit grad_out of its
    // shape. Gradients accumulate into the `grad` of every leaf that requires grad.
    void backward(const Tensor& grad_out = {}, BackwardOptions options = {}) const;

    detail::VarImpl* impl() const { return impl_.get(); }
    const std::shared_ptr<detail::VarImpl>& impl_ptr() const { return impl_; }
    explicit Variable(std::shared_ptr<detail::VarImpl> impl) : impl_(std::move(impl)) {}

private:
    std::shared_ptr<detail::VarImpl> impl_;
    void require_defined(const char* what) const;
    [[noreturn]] void value_unavailable() const;  // value() of an undefined or released variable
};

// A constant (no grad) of the same dtype as `like`, used for scalar operands: x * 2.0
Variable constant(double value, DType dtype);
Variable constant(const Tensor& value);

}  // namespace tapegrad
