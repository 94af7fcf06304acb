// Variable: a tensor value plus its place in the autodiff graph.
//  - A leaf (a parameter, an input) owns `grad`, which backward() accumulates into until
//    zero_grad().
//  - A result of an op recorded on a tape knows its tape entry; its gradient lives on the
//    tape only while backward runs.
//  - Under NoGradGuard, or when no input requires grad, an op's result is a plain value.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace tapegrad {

class Tape;
class Variable;

struct BackwardOptions {
    bool retain_graph = false;  // keep the graph for another backward over it
    bool create_graph = false;  // record the backward pass itself (gradients of gradients)
    // Keep the norm of every recorded result's gradient on the tape, for graph export
    // (to_dot colours ops by it; needs retain_graph too, so the graph is still there).
    bool keep_grad_norms = false;
};

// A gradient hook: called with a variable's gradient during backward. It returns a
// replacement of the same shape and dtype, or an undefined Variable to keep the gradient.
using GradHook = std::function<Variable(const Variable& grad)>;

namespace detail {
// What a name, register_hook and retain_grad add to a variable. Most variables (every
// gradient, most op results) have none, so it lives apart and VarImpl stays small.
struct VarExtras {
    std::string name;                                       // in error messages and graph exports
    std::vector<std::pair<std::uint64_t, GradHook>> hooks;  // in registration order
    std::uint64_t next_id = 1;
    bool retain_grad = false;
};

struct VarImpl {
    Tensor value;
    bool requires_grad = false;
    std::shared_ptr<VarImpl> grad;      // leaves only: accumulated gradient
    std::unique_ptr<VarExtras> extras;  // name, hooks, retain_grad: null when none
    VarExtras& more() {
        if (!extras) extras = std::make_unique<VarExtras>();
        return *extras;
    }
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

// Removes the hook it was returned for (see Variable::register_hook).
class HookHandle {
public:
    HookHandle() = default;
    void remove();

private:
    friend class Variable;
    HookHandle(std::weak_ptr<detail::VarImpl> owner, std::uint64_t id)
        : owner_(std::move(owner)), id_(id) {}
    std::weak_ptr<detail::VarImpl> owner_;
    std::uint64_t id_ = 0;
};

class Variable {
public:
    Variable() = default;  // undefined
    // A leaf holding `value`, float32 or float64 (an int64 tensor is a DTypeError).
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

    // The accumulated gradient of a leaf, or of a recorded variable after retain_grad()
    // (undefined Tensor until a backward reaches it).
    const Tensor& grad() const;
    // A recorded variable keeps its gradient in grad() from now on, accumulating over
    // backward() passes as a leaf's does (after its hooks). On a leaf it changes nothing.
    Variable& retain_grad();
    bool retains_grad() const;

    // Calls hook(gradient) in every backward that reaches this variable, once its gradient
    // is complete (before it flows on to the inputs, or, for a leaf, before it is added to
    // grad()). Hooks run in registration order, each on what the one before returned; a
    // defined return value replaces the gradient. A recorded variable's hooks are released
    // with its graph. A hook that returns nothing only observes:
    //   h.register_hook([&](const Variable& g) { norms.push_back(norm(g).item()); });
    template <class F>
    HookHandle register_hook(F hook) {
        if constexpr (std::is_void_v<std::invoke_result_t<F&, const Variable&>>)
            return add_hook([hook = std::move(hook)](const Variable& g) mutable {
                hook(g);
                return Variable();
            });
        else return add_hook(GradHook(std::move(hook)));
    }
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
    HookHandle add_hook(GradHook hook);
    void require_defined(const char* what) const;
    [[noreturn]] void value_unavailable() const;  // value() of an undefined or released variable
};

// Names v (in error messages and graph exports) and returns it, so a cell can label its
// variables where it computes them: auto i = name(sigmoid(gate[0]), "input gate");
Variable name(Variable v, std::string label);

// A constant (no grad) of the same dtype as `like`, used for scalar operands: x * 2.0
Variable constant(double value, DType dtype);
Variable constant(const Tensor& value);

}  // namespace tapegrad
