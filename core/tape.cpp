#include "core/tape.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>

#include "core/engine_ops.hpp"
#include "core/graph.hpp"

namespace tapegrad {

namespace {
std::atomic<std::uint64_t> next_generation{1};
thread_local Tape default_tape;
thread_local Tape* active_tape = nullptr;
thread_local bool grad_mode = true;
thread_local bool anomaly_mode = false;
// The op whose backward rule is running on this thread, for anomaly messages.
thread_local const char* backward_op = nullptr;
thread_local std::source_location backward_loc;

// The tape looks for unreferenced graphs when it reaches this many entries (then at twice
// the size while something still refers to them).
constexpr std::size_t first_sweep_check = 4096;

std::string describe(const Variable& v) {
    return fmt::format("{} {}", to_string(v.shape()), name(v.dtype()));
}

// ", in LSTM/layer 0/forward, step 3" when a GraphScope is open: where in a layer an op ran.
std::string open_scope_text() {
    const GraphScope* s = detail::open_graph_scope;
    if (!s) return "";
    return fmt::format(", in {}{}", s->path(),
                       s->step() >= 0 ? fmt::format(", step {}", s->step()) : "");
}

std::string at(const std::source_location& loc) {
    return call_site(loc).empty() ? "" : " at " + call_site(loc);
}

}  // namespace

Variable detail::accumulate(Variable a, const Variable& g, bool create_graph) {
    if (!a.defined()) return g;
    if (create_graph) return add(a, g, std::source_location::current());
    if (a.impl_ptr().use_count() == 1) {
        Tensor& value = a.impl()->value;
        if (value.shape() == g.shape()) value.add_(g.value());
        else
            dispatch(value.dtype(), [&]<class T>() { value.mutable_xt<T>() += g.value().xt<T>(); });
        return a;
    }
    NoGradGuard no_grad;
    return add(a, g, std::source_location::current());
}
using detail::accumulate;

Tape::Tape() : products_(std::make_unique<ProductSchedule>()), generation_(next_generation++) {}
Tape::~Tape() = default;

Tape& current_tape() { return active_tape ? *active_tape : default_tape; }

TapeScope::TapeScope(Tape& tape) : previous_(active_tape) { active_tape = &tape; }
TapeScope::~TapeScope() { active_tape = previous_; }

bool grad_enabled() { return grad_mode; }
NoGradGuard::NoGradGuard() : previous_(grad_mode) { grad_mode = false; }
NoGradGuard::~NoGradGuard() { grad_mode = previous_; }
GradModeGuard::GradModeGuard(bool on) : previous_(grad_mode) { grad_mode = on; }
GradModeGuard::~GradModeGuard() { grad_mode = previous_; }

bool anomaly_enabled() { return anomaly_mode; }
AnomalyGuard::AnomalyGuard(bool on) : previous_(anomaly_mode) { anomaly_mode = on; }
AnomalyGuard::~AnomalyGuard() { anomaly_mode = previous_; }

void Tape::release_hooks(Entry& e) {
    auto release = [](const Variable& v) {
        if (v.defined() && v.impl()->extras) v.impl()->extras->hooks.clear();
    };
    release(e.result);
    for (const auto& r : e.more_results) release(r);
}

void Tape::note_scope(std::uint32_t index) {
    GraphScope* s = detail::open_graph_scope;
    if (s->tape_ != this || s->generation_ != generation_) {  // first op in it on this tape
        if (notes_.paths.empty() || notes_.paths.back() != *s->path_)
            notes_.paths.push_back(*s->path_);
        notes_.scope_paths.push_back(static_cast<std::uint32_t>(notes_.paths.size() - 1));
        notes_.scope_steps.push_back(s->step_);
        s->tape_ = this;
        s->generation_ = generation_;
        s->id_ = static_cast<std::uint32_t>(notes_.scope_paths.size());
    }
    if (notes_.entry_scope.size() <= index) notes_.entry_scope.resize(index + 1, 0);
    notes_.entry_scope[index] = s->id_;
}

void Tape::reset() {
    if (has_hooks_)
        for (Entry& e : entries_) release_hooks(e);
    has_hooks_ = false;
    notes_ = {};
    entries_.clear();
    products_->reset();
    release_queue_.clear();
    records_since_release_ = 0;
    release_floor_ = 0;
    generation_ = next_generation++;
}

void Tape::clear() {
    if (in_backward_) throw GraphError("Tape::clear: called from inside a backward pass");
    reset();
}

void Tape::check_owned(const detail::VarImpl& v, const char* what) const {
    if (v.tape != this)
        throw GraphError(fmt::format(
            "{}: the variable was recorded on another tape (each thread, and each TapeScope, "
            "records on its own tape; run backward where the forward ran)",
            what));
    if (v.generation != generation_)
        throw GraphError(fmt::format(
            "{}: the variable comes from a cleared tape: its graph was released by an earlier "
            "backward() or Tape::clear(); recompute it, or pass retain_graph=true to the earlier "
            "backward",
            what));
}

Variable record(const char* op, Tensor result, std::span<const Variable> inputs, Reads reads,
                BackwardFn backward, const std::source_location& loc) {
    if (anomaly_mode && !all_finite(result)) {
        if (backward_op)
            fail<AnomalyError>(backward_op,
                               fmt::format("backward produced NaN or Inf (in its '{}' step, "
                                           "result {})",
                                           op, to_string(result.shape())),
                               backward_loc);
        fail<AnomalyError>(op,
                           fmt::format("produced NaN or Inf in its forward result {}{}",
                                       to_string(result.shape()), open_scope_text()),
                           loc);
    }
    auto impl = make_cached<detail::VarImpl>();
    impl->value = std::move(result);
    bool needs_grad = false;
    if (grad_mode)
        for (const auto& in : inputs) needs_grad = needs_grad || in.requires_grad();
    if (!needs_grad) return Variable(std::move(impl));

    Tape& tape = current_tape();
    for (const auto& in : inputs) {
        const auto* v = in.impl();
        if (v && v->requires_grad && v->tape && v->tape != &tape)
            fail<GraphError>(op,
                             "an input was recorded on another tape (each thread and each "
                             "TapeScope records on its own; a TBB shard must not use another "
                             "shard's variables)",
                             loc);
    }
    // A forward-only loop (no backward) would grow the tape forever; when a new graph starts
    // (no input on this tape) on a large tape, release it if nothing outside refers to it.
    if (tape.entries_.size() >= tape.next_sweep_check_ && !tape.in_backward_) {
        bool starts_graph = true;
        for (const auto& in : inputs)
            starts_graph = starts_graph && (!in.impl() || !in.impl()->tape);
        if (starts_graph) {
            if (!tape.referenced_from_outside()) {
                tape.reset();
                tape.next_sweep_check_ = first_sweep_check;
            } else {
                tape.next_sweep_check_ = 2 * tape.entries_.size();
            }
        }
    }
    impl->requires_grad = true;
    impl->tape = &tape;
    impl->generation = tape.generation_;
    impl->index = static_cast<std::uint32_t>(tape.entries_.size());
    Variable out(std::move(impl));
    Tape::Entry& entry =
        tape.entries_.emplace_back(Tape::Entry{.op = op,
                                               .loc = loc,
                                               .inputs = InputList(inputs.begin(), inputs.end()),
                                               .backward = std::move(backward),
                                               .result = out});
    if (detail::open_graph_scope) tape.note_scope(out.impl()->index);
    const auto pass = static_cast<std::size_t>(reads.passes_gradient_to);
    if (reads.passes_gradient_to >= 0 && pass < inputs.size() && inputs[pass].defined() &&
        inputs[pass].shape() == out.shape() && inputs[pass].dtype() == out.dtype())
        entry.passes_to = reads.passes_gradient_to;
    // Count the rules that may read each value; a value no rule reads is queued for release.
    entry.readers = reads.result ? 1 : 0;
    if (!reads.result) tape.unread(out.impl()->index);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const auto* v = inputs[i].impl();
        if (!v || v->tape != &tape || v->generation != tape.generation_) continue;
        ++tape.entries_[v->index].uses;
        const bool read = i < 64 ? (reads.inputs >> i & 1) : reads.inputs == all_inputs;
        if (read) ++tape.entries_[v->index].readers;
        else if (tape.entries_[v->index].readers == 0) tape.unread(v->index);
    }
    if (++tape.records_since_release_ >= 16 && !tape.in_backward_) tape.release_unread();
    return out;
}

std::vector<Variable> record(const char* op, std::vector<Tensor> results,
                             std::span<const Variable> inputs, Reads reads, BackwardFn backward,
                             const std::source_location& loc) {
    std::vector<Variable> out;
    if (results.empty()) return out;
    // The first result makes the entry; the others join it.
    out.push_back(record(op, std::move(results[0]), inputs, reads, std::move(backward), loc));
    const detail::VarImpl* first = out[0].impl();
    for (std::size_t k = 1; k < results.size(); ++k) {
        if (anomaly_mode && !all_finite(results[k]))
            fail<AnomalyError>(op,
                               fmt::format("produced NaN or Inf in its forward result {}",
                                           to_string(results[k].shape())),
                               loc);
        auto impl = make_cached<detail::VarImpl>();
        impl->value = std::move(results[k]);
        if (first->tape) {
            impl->requires_grad = true;
            impl->tape = first->tape;
            impl->generation = first->generation;
            impl->index = first->index;
            impl->output = static_cast<std::uint32_t>(k);
        }
        out.emplace_back(std::move(impl));
        if (!first->tape) continue;
        Tape::Entry& entry = first->tape->entries_[first->index];
        entry.more_results.push_back(out.back());
        entry.more_grads.emplace_back();
    }
    return out;
}

Variable record(const char* op, Tensor result, std::initializer_list<Variable> inputs, Reads reads,
                BackwardFn backward, const std::source_location& loc) {
    return record(op, std::move(result), std::span<const Variable>(inputs.begin(), inputs.size()),
                  reads, std::move(backward), loc);
}

Variable record(const char* op, Tensor result, std::initializer_list<Variable> inputs,
                BackwardFn backward, const std::source_location& loc) {
    return record(op, std::move(result), inputs, Reads{}, std::move(backward), loc);
}

Variable Backward::result() const { return tape_.entries_[entry_].result; }

Variable& Tape::grad_of(const detail::VarImpl& v) {
    Entry& e = entries_[v.index];
    return v.output == 0 ? e.grad : e.more_grads[v.output - 1];
}

std::size_t Backward::leaf_slot(const Variable& leaf) {
    auto [slot, fresh] = leaf_slots_->try_emplace(leaf.impl(), leaf_grads_->leaves.size());
    if (fresh) {
        leaf_grads_->leaves.push_back(leaf.impl_ptr());
        leaf_grads_->grads.emplace_back();
        leaf_grads_->pending.emplace_back();
    }
    return slot->second;
}

void Backward::add(std::size_t i, const Variable& g_in) {
    const Variable& in = (*inputs_)[i];
    if (!in.requires_grad() || !g_in.defined()) return;
    const char* op = tape_.entries_[entry_].op;
    const std::source_location loc = tape_.entries_[entry_].loc;
    Variable g = g_in;
    if (g.dtype() != in.dtype())
        fail<DTypeError>(op,
                         fmt::format("backward produced a {} gradient for {} input {}",
                                     name(g.dtype()), describe(in), i),
                         loc);
    if (g.shape() != in.shape()) g = sum_to(g, in.shape(), loc);
    if (anomaly_mode && !all_finite(g.value()))
        fail<AnomalyError>(op,
                           fmt::format("backward produced NaN or Inf in the gradient of "
                                       "input {} ({})",
                                       i, describe(in)),
                           loc);
    auto* v = in.impl();
    if (v->tape == nullptr) {  // a leaf
        auto& acc = leaf_grads_->grads[leaf_slot(in)];
        acc = accumulate(std::move(acc), g, create_graph_);
        return;
    }
    tape_.check_owned(*v, op);
    // No reference into entries_ across accumulate(): with create_graph it records, and the
    // vector may reallocate.
    Variable sum = accumulate(std::move(tape_.grad_of(*v)), g, create_graph_);
    tape_.grad_of(*v) = std::move(sum);
}

void Backward::add_product(std::size_t i, const Variable& x, const Variable& y) {
    const Variable& in = (*inputs_)[i];
    if (!in.requires_grad()) return;
    const detail::VarImpl* v = in.impl();
    bool deferred = false;
    if (v->tape == nullptr) {  // a leaf: its products are summed at the end of the sweep
        const std::size_t slot = leaf_slot(in);
        deferred = tape_.products_->defer(*this, in, leaf_grads_->pending[slot],
                                          ProductSchedule::leaf_key(slot), x, y);
    } else if (v->tape == &tape_ && v->output == 0) {  // summed just before its own rule runs
        tape_.check_owned(*v, tape_.entries_[entry_].op);
        deferred = tape_.products_->defer(*this, in, tape_.entries_[v->index].pending,
                                          ProductSchedule::entry_key(v->index), x, y);
    }
    if (!deferred) add(i, matmul(x, y, true, false, tape_.entries_[entry_].loc));
}

std::vector<Variable> Tape::run_backward(const Variable& root, const Variable& seed,
                                         std::span<const Variable> wanted, BackwardOptions options,
                                         LeafGrads* leaf_grads) {
    if (in_backward_)
        throw GraphError(
            "backward: called from inside a backward rule; nested backward passes "
            "are not supported");
    LeafGrads local;
    LeafGrads& leaves = leaf_grads ? *leaf_grads : local;
    // Only backward() fills grad(): grad() reads gradients without keeping them anywhere.
    const bool keep_retained = leaf_grads != nullptr;
    return products_->around_sweep(options.create_graph, [&] {
        return sweep(root, seed, wanted, options, keep_retained, leaves);
    });
}

std::vector<Variable> Tape::sweep(const Variable& root, const Variable& seed,
                                  std::span<const Variable> wanted, BackwardOptions options,
                                  bool keep_retained, LeafGrads& leaves) {
    check_owned(*root.impl(), "backward");
    const std::size_t r = root.impl()->index;
    if (!entries_[r].backward)
        throw GraphError(fmt::format(
            "backward: the graph of '{}'{} was already freed by an earlier backward(); pass "
            "retain_graph=true to that call to run backward over it again",
            entries_[r].op, at(entries_[r].loc)));
    const bool retain = options.retain_graph || options.create_graph;
    for (std::uint32_t index : release_queue_) entries_[index].queued = false;
    release_queue_.clear();
    release_floor_ = entries_.size();

    std::unordered_map<const detail::VarImpl*, std::size_t> wanted_slot;
    for (std::size_t k = 0; k < wanted.size(); ++k) {
        if (!wanted[k].requires_grad())
            throw GraphError(
                fmt::format("grad: input {} ({}) does not require grad", k, describe(wanted[k])));
        wanted_slot.emplace(wanted[k].impl(), k);
    }
    std::vector<Variable> out(wanted.size());

    leaves.pending.resize(leaves.leaves.size());  // a slot per leaf (see Backward::leaf_slot)
    std::unordered_map<detail::VarImpl*, std::size_t> leaf_slots;
    for (std::size_t k = 0; k < leaves.leaves.size(); ++k)
        leaf_slots.emplace(leaves.leaves[k].get(), k);

    struct Sweeping {  // restores the flag however the sweep ends
        bool& flag;
        explicit Sweeping(bool& f) : flag(f) { flag = true; }
        ~Sweeping() { flag = false; }
    } sweeping(in_backward_);
    GradModeGuard mode(options.create_graph);
    // Products deferred into recorded variables are added before those variables' rules run;
    // if the sweep stops early, the ones not reached are dropped with it.
    struct DropPending {
        std::vector<Entry>& entries;
        int exceptions = std::uncaught_exceptions();
        ~DropPending() {
            if (std::uncaught_exceptions() > exceptions)
                for (Entry& e : entries) e.pending = {};
        }
    } drop_pending{entries_};

    if (options.keep_grad_norms) notes_.grad_norms.assign(r + 1, -1.0f);
    entries_[r].grad = seed;
    for (std::size_t i = r + 1; i-- > 0;) {
        Variable g = std::move(entries_[i].grad);
        entries_[i].grad = Variable();
        if (!entries_[i].pending.empty())
            g = products_->collect(entries_[i].pending, ProductSchedule::entry_key(i),
                                   std::move(g));
        std::vector<Variable> more;  // the gradients of an op's further results
        if (!entries_[i].more_grads.empty()) {
            more = std::move(entries_[i].more_grads);
            entries_[i].more_grads.assign(more.size(), Variable());
        }
        const bool reached = g.defined() || std::any_of(more.begin(), more.end(),
                                                        [](auto& m) { return m.defined(); });
        if (!reached) continue;
        if (has_hooks_) {  // the gradient is complete: hooks see it before it flows on
            g = detail::run_hooks(*entries_[i].result.impl(), std::move(g), options.create_graph,
                                  keep_retained);
            for (std::size_t k = 0; k < more.size(); ++k)
                more[k] = detail::run_hooks(*entries_[i].more_results[k].impl(), std::move(more[k]),
                                            options.create_graph, keep_retained);
        }
        if (options.keep_grad_norms) {
            auto squared = [](const Variable& v) {
                return v.defined() ? std::pow(norm_of(v.value()), 2) : 0.0;
            };
            double sq = squared(g);  // over all the entry's results
            for (const auto& m : more) sq += squared(m);
            notes_.grad_norms[i] = static_cast<float>(std::sqrt(sq));
        }
        if (!wanted_slot.empty()) {
            if (auto it = wanted_slot.find(entries_[i].result.impl()); it != wanted_slot.end())
                out[it->second] = g;
            for (std::size_t k = 0; k < more.size(); ++k)
                if (auto it = wanted_slot.find(entries_[i].more_results[k].impl());
                    it != wanted_slot.end())
                    out[it->second] = more[k];
        }
        if (!entries_[i].backward)
            throw GraphError(fmt::format(
                "backward: the graph through '{}'{} was already freed by an earlier backward(); "
                "pass retain_graph=true to that call",
                entries_[i].op, at(entries_[i].loc)));
        // Move the rule and its inputs out: with create_graph the rule appends entries and
        // the vector may reallocate under us.
        BackwardFn fn = std::move(entries_[i].backward);
        InputList inputs = std::move(entries_[i].inputs);
        entries_[i].backward = nullptr;
        Backward ctx(*this, i, g, options.create_graph);
        ctx.inputs_ = &inputs;
        ctx.more_grads_ = &more;
        ctx.leaf_slots_ = &leaf_slots;
        ctx.leaf_grads_ = &leaves;
        backward_op = entries_[i].op;
        backward_loc = entries_[i].loc;
        try {
            fn(ctx);
        } catch (...) {
            backward_op = nullptr;
            entries_[i].backward = std::move(fn);
            entries_[i].inputs = std::move(inputs);
            throw;
        }
        backward_op = nullptr;
        if (retain) {
            entries_[i].backward = std::move(fn);
            entries_[i].inputs = std::move(inputs);
        } else {
            if (has_hooks_) release_hooks(entries_[i]);
            entries_[i].result = Variable();  // release the saved values as we go
            entries_[i].more_results.clear();
        }
    }
    for (std::size_t k = 0; k < leaves.pending.size(); ++k) {
        leaves.grads[k] = products_->collect(leaves.pending[k], ProductSchedule::leaf_key(k),
                                             std::move(leaves.grads[k]));
        if (leaves.leaves[k]->extras)
            leaves.grads[k] = detail::run_hooks(*leaves.leaves[k], std::move(leaves.grads[k]),
                                                options.create_graph, keep_retained);
    }
    for (std::size_t k = 0; k < leaves.leaves.size(); ++k)
        if (auto it = wanted_slot.find(leaves.leaves[k].get()); it != wanted_slot.end())
            out[it->second] = leaves.grads[k];
    if (!retain && !referenced_from_outside()) reset();
    return out;
}

}  // namespace tapegrad
