#include "core/variable.hpp"

#include "core/tape.hpp"

#include <fmt/format.h>
#include <algorithm>

namespace tapegrad {

Variable::Variable(Tensor value, bool requires_grad, std::string name)
    : impl_(make_cached<detail::VarImpl>()) {
    if (!value.defined()) throw ValueError("Variable: the value tensor is undefined");
    if (value.dtype() == DType::int64) [[unlikely]]
        throw DTypeError(fmt::format(
            "Variable: an int64 tensor {} holds ids, labels or lengths, not values to "
            "differentiate; pass it where those go (Embedding, cross_entropy, gather, lengths), "
            "or .to(float32) for values",
            to_string(value.shape())));
    impl_->value = std::move(value);
    impl_->requires_grad = requires_grad;
    if (!name.empty()) impl_->more().name = std::move(name);
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

Variable name(Variable v, std::string label) {
    v.set_name(std::move(label));
    return v;
}

const std::string& Variable::name() const {
    static const std::string none;
    require_defined("name");
    return impl_->extras ? impl_->extras->name : none;
}

Variable& Variable::set_name(std::string name) {
    require_defined("set_name");
    impl_->more().name = std::move(name);
    return *this;
}

const Tensor& Variable::grad() const {
    static const Tensor none;
    require_defined("grad");
    return impl_->grad ? impl_->grad->value : none;
}

Variable& Variable::retain_grad() {
    require_defined("retain_grad");
    if (is_leaf()) return *this;  // a leaf keeps its gradient anyway
    impl_->more().retain_grad = true;
    impl_->tape->has_hooks_ = true;
    return *this;
}

bool Variable::retains_grad() const { return impl_ && impl_->extras && impl_->extras->retain_grad; }

HookHandle Variable::add_hook(GradHook hook) {
    require_defined("register_hook");
    if (!requires_grad())
        throw GraphError(fmt::format(
            "register_hook: the variable ({} {}) does not require grad, so no gradient reaches it",
            to_string(shape()), tapegrad::name(dtype())));
    if (!hook) throw ValueError("register_hook: the hook is empty");
    detail::VarExtras& extras = impl_->more();
    const std::uint64_t id = extras.next_id++;
    extras.hooks.emplace_back(id, std::move(hook));
    if (impl_->tape) impl_->tape->has_hooks_ = true;
    return HookHandle(impl_, id);
}

void HookHandle::remove() {
    auto owner = owner_.lock();
    if (!owner || !owner->extras) return;
    std::erase_if(owner->extras->hooks, [&](const auto& h) { return h.first == id_; });
}

Variable detail::run_hooks(VarImpl& v, Variable g, bool create_graph, bool keep) {
    if (!v.extras || !g.defined()) return g;
    // A copy: a hook may add or remove hooks while they run.
    const auto hooks = v.extras->hooks;
    for (std::size_t k = 0; k < hooks.size(); ++k) {
        Variable r = hooks[k].second(g);
        if (!r.defined()) continue;
        if (r.shape() != g.shape() || r.dtype() != g.dtype())
            throw GraphError(fmt::format(
                "gradient hook {} of {} ({} {}) returned a {} {} gradient; a hook returns a "
                "gradient of the variable's shape and dtype, or nothing",
                k, v.extras->name.empty() ? std::string("a variable") : "'" + v.extras->name + "'",
                to_string(g.shape()), tapegrad::name(g.dtype()), to_string(r.shape()),
                tapegrad::name(r.dtype())));
        g = std::move(r);
    }
    if (keep && v.extras->retain_grad) {
        Variable acc = v.grad ? Variable(v.grad) : Variable();
        v.grad.reset();
        v.grad = accumulate(std::move(acc), g, create_graph).impl_ptr();
    }
    return g;
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
        seed = detail::run_hooks(*impl_, std::move(seed), false, true);
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
        if (std::any_of(wanted.begin(), wanted.end(),
                        [&](const Variable& w) { return w.impl() == root.impl(); }))
            seed = detail::run_hooks(*root.impl(), std::move(seed), false, false);
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
