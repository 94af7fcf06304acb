// The tape: an append-only record of the ops run while gradients are enabled, in creation
// order. backward() walks it in reverse — no recursion, no topological sort — so a chain of
// any length backpropagates on a flat loop.
//
// Each thread records on its current tape (a thread-local default, or the one a TapeScope
// installs), so TBB shards of a batch each keep their own tape and never share entries.
//
// An op is written as one function holding its forward and its backward rule:
//
//   Variable tanh(const Variable& x) {
//       Tensor r = ...forward...;
//       return record("tanh", std::move(r), {x}, [](Backward& b) {
//           // d tanh(x) = 1 - tanh(x)^2
//           b.add(0, b.grad_out() * (1.0 - b.result() * b.result()));
//       });
//   }
//
// Backward rules are written with Variable ops, so with create_graph they are recorded too
// and a gradient is itself differentiable. An op whose rule reads only some of its values
// says which (reads_only, below), so the tape can release the others during forward.
//
//       return reads_only(record("tanh", ...), {}, true);  // reads its result, not x
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <source_location>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/variable.hpp"

namespace tapegrad {

class Backward;
using BackwardFn = std::function<void(Backward&)>;
// A recorded op's inputs, held from the cache tensors' buffers come from (core/memory.hpp).
using InputList = std::vector<Variable, BufferAllocator<Variable>>;

// Memory a gradient may be written into directly (set_gradient_destination): `view` is the
// tensor the gradient then is, `data` where its elements start, writable. None when null.
struct GradientDestination {
    Tensor view;
    void* data = nullptr;
    bool defined() const { return data != nullptr; }
};
// Called from the backward rule that asks (Backward::destination), whose sweep() and
// destination_of_input() it may use; returns a destination or none.
using DestinationFn = std::function<GradientDestination(Backward& asking)>;

class Tape {
public:
    Tape();
    Tape(const Tape&) = delete;
    Tape& operator=(const Tape&) = delete;
    ~Tape();

    std::size_t size() const { return entries_.size(); }  // entries recorded, live or freed
    std::size_t saved_bytes() const;  // bytes of op results still held by live entries
    // Drop every entry; variables recorded so far report "cleared tape" if used for backward.
    void clear();

    // Leaf gradients of the last sweep, in first-reached order (see run_backward).
    struct LeafGrads {
        std::vector<std::shared_ptr<detail::VarImpl>> leaves;
        std::vector<Variable> grads;
        // Per leaf: products Xᵀ Y still to add (Backward::add_product), summed at the end of
        // the sweep as one gemm over all of them.
        std::vector<std::vector<std::pair<Tensor, Tensor>>> pending;
    };

    // The reverse sweep from `root` seeded with `seed`. Returns the gradients that reached
    // the variables in `wanted` (undefined where none did) and, when `leaf_grads` is given,
    // every leaf gradient, without touching any leaf's `grad`.
    std::vector<Variable> run_backward(const Variable& root, const Variable& seed,
                                       std::span<const Variable> wanted, BackwardOptions options,
                                       LeafGrads* leaf_grads);

    // A gradient, the joined array holding a copy of it, and where in that array it starts.
    struct Copied {
        Tensor whole, joined;
        std::size_t offset;
    };

private:
    friend class Backward;
    friend Variable record(const char*, Tensor, std::initializer_list<Variable>, BackwardFn,
                           const std::source_location&);
    struct Entry {
        const char* op;
        std::source_location loc;
        InputList inputs;
        BackwardFn backward;                   // empty once freed by a backward
        Variable result;                       // the op's output
        Variable grad;                         // adjoint, only during a sweep
        std::vector<std::pair<Tensor, Tensor>> pending;  // deferred xᵀ y still to add to grad
        std::uint32_t uses = 0;     // inputs of later entries that are this result
        std::uint32_t readers = 0;  // backward rules that may read the result's value
        std::int32_t passes_to = -1;  // the input whose gradient is this result's, unchanged
        bool queued = false;        // in release_queue_
        // deferred products of this sweep counted in early_ (kept here, not looked up in
        // early_->rows, because the sweep asks every entry)
        bool has_parts = false;
    };
    std::vector<Entry> entries_;
    std::vector<std::uint32_t> release_queue_;  // entries no backward reads: released once unheld
    std::uint32_t records_since_release_ = 0;
    // Entries below this were recorded before a backward, which moves inputs and results
    // out: the references release_unread counts no longer add up, so they are never released.
    std::size_t release_floor_ = 0;
    void release_unread();
    // The entry of `out` when it is the last one recorded on this thread's tape, else null:
    // what reads_only and passes_gradient amend.
    static Entry* just_recorded(const Variable& out);
    friend Variable reads_only(Variable, std::initializer_list<std::size_t>, bool);
    friend Variable passes_gradient(Variable, std::size_t);
    friend void set_gradient_destination(const Variable&, DestinationFn);
    std::unordered_map<std::uint32_t, DestinationFn> destinations_;  // by entry
    std::uint64_t sweep_ = 0;  // backward sweeps run on this tape
    std::vector<Copied> copied_;  // this sweep's Backward::copied_into records
    // Inside a SharedProductsScope: parts of the sums of deferred products started as TBB tasks
    // during the sweep, each as soon as its x's fill early_product_rows (core/tape.cpp).
    struct EarlyProducts;
    std::unique_ptr<EarlyProducts> early_;
    // `pending` just grew by `rows`: starts it as a part if that makes enough.
    void start_early(std::vector<std::pair<Tensor, Tensor>>& pending, std::size_t key, std::size_t rows);
    // g plus the started parts of `key`'s products, in the order they were started.
    Variable add_started(std::size_t key, Variable g);
    std::uint64_t generation_;
    bool in_backward_ = false;
    std::size_t next_sweep_check_ = 4096;

    void check_owned(const detail::VarImpl& v, const char* what) const;
    void reset();
    bool referenced_from_outside() const;
};

// The tape this thread records on.
Tape& current_tape();

// Installs `tape` as this thread's tape for the guard's lifetime (nests).
class TapeScope {
public:
    explicit TapeScope(Tape& tape);
    ~TapeScope();
    TapeScope(const TapeScope&) = delete;
    TapeScope& operator=(const TapeScope&) = delete;

private:
    Tape* previous_;
};

// Gradient recording on this thread: on by default.
bool grad_enabled();
class NoGradGuard {
public:
    NoGradGuard();
    ~NoGradGuard();
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;

private:
    bool previous_;
};
// Sets recording to `on` for its lifetime (used by create_graph).
class GradModeGuard {
public:
    explicit GradModeGuard(bool on);
    ~GradModeGuard();
    GradModeGuard(const GradModeGuard&) = delete;
    GradModeGuard& operator=(const GradModeGuard&) = delete;

private:
    bool previous_;
};

// What a backward rule sees.
class Backward {
public:
    const Variable& grad_out() const { return grad_out_; }  // d loss / d result
    Variable result() const;                                // the op's output
    const Variable& input(std::size_t i) const { return (*inputs_)[i]; }
    // Does input i want a gradient? Rules skip the work for inputs that do not.
    bool needs(std::size_t i) const { return (*inputs_)[i].requires_grad(); }
    // Accumulates g into input i's gradient; broadcasting is undone here (sum_to), so a rule
    // may pass a gradient of the broadcast shape.
    void add(std::size_t i, const Variable& g);
    // Accumulates the matrix product xᵀ y ([K, M]ᵀ [K, N] -> [M, N]) into input i's gradient:
    // the shape of a weight's gradient in a matmul's backward. In a plain backward the product
    // is deferred, and all of an input's products are summed as ONE gemm over their stacked
    // rows — a recurrent weight used at T steps gets one [M, T*K] x [T*K, N] product instead
    // of T small ones and T additions. A leaf's (a parameter's) are summed at the end of the
    // sweep; a recorded variable's (a slice of a parameter, say) just before its own backward
    // rule runs, when no further product can reach it.
    void add_product(std::size_t i, const Variable& x, const Variable& y);
    // Tells the sweep that `whole`, a gradient this rule received, now also lies in `joined`
    // (a contiguous array) from element `offset` on: a split's backward, which joins its
    // pieces' gradients. Deferred products whose x's are such gradients, filling one range of
    // one joined array, read that range in place instead of stacking the x's again.
    void copied_into(const Tensor& whole, const Tensor& joined, std::size_t offset);
    // Tells the sweep that ranges of `joined` (a contiguous array) are handed out as the
    // destinations of gradients (Backward::destination), so that deferred products whose x's
    // were written there read them in place, even before the rule that joins them has run.
    void writes_into(const Tensor& joined);
    // Where input i's gradient may be written straight away: a destination registered for it
    // (set_gradient_destination), or for the input its gradient passes to unchanged
    // (passes_gradient), while no gradient has reached either yet. A split into consecutive
    // ranges offers each piece its range of the joined gradient, so the rule that makes a
    // piece's gradient (the join of an LSTM's gate gradients, say) writes it where the
    // split's own backward would have copied it. None with create_graph.
    // Column pieces (a chunk of gate pre-activations along axis 1) are offered their columns
    // of the destination of the split's input, so the elementwise rules that make the
    // pieces' gradients (sigmoid, tanh) write them where the join would have copied them.
    GradientDestination destination(std::size_t i);
    // The destination of input i of the op that recorded `result` on this tape (none when its
    // rule has run or was freed): for a DestinationFn that hands out parts of it.
    GradientDestination destination_of_input(const Variable& result, std::size_t i);
    std::uint64_t sweep() const;  // the running sweep's number

private:
    friend class Tape;
    Backward(Tape& tape, std::size_t entry, const Variable& grad_out, bool create_graph)
        : tape_(tape), entry_(entry), grad_out_(grad_out), create_graph_(create_graph) {}
    Tape& tape_;
    std::size_t entry_;
    Variable grad_out_;
    bool create_graph_;
    const InputList* inputs_ = nullptr;
    std::unordered_map<detail::VarImpl*, std::size_t>* leaf_slots_ = nullptr;
    Tape::LeafGrads* leaf_grads_ = nullptr;
    std::size_t leaf_slot(const Variable& leaf);  // leaf's index in *leaf_grads_, added if new
    GradientDestination destination_for(const Variable& wanted);  // destination(i)'s search
};

// Declares that the backward rule of the op that just recorded `out` hands its gradient to
// input `input` unchanged, same shape and all (addmm's addend when not broadcast), so that
// input's gradient destination serves `out` as well. Returns `out`.
Variable passes_gradient(Variable out, std::size_t input);

// Registers where the gradient of `v`, recorded on this thread's tape, may be written during a
// sweep: `fn` is asked at most once per request (Backward::destination) and hands out memory
// that nothing else writes in that sweep. The registration lasts as long as the tape's graph.
void set_gradient_destination(const Variable& v, DestinationFn fn);

// While one is alive on a thread, the sums of deferred products (a weight's gradient summed
// over all steps as one product, Backward::add_product) of the sweeps run there are cut into
// blocks of 64 rows of the result, computed as TBB tasks. Another TBB thread with nothing else
// to do takes some of them: parallel_backward opens one in every shard, so the shard that
// finishes its sweep first helps finish the others' weight gradients instead of waiting (on
// vCPUs of unequal speed, say). A variable's products are moreover summed in parts of at least
// 512 rows of x's, each started as a task during the sweep as soon as its last product is
// added, so the other thread can take them while this one is still sweeping; the parts are
// added in order at the end. The cuts depend only on the products' shapes and order, so
// results do not depend on which thread runs what.
class SharedProductsScope {
public:
    SharedProductsScope();
    ~SharedProductsScope();
    SharedProductsScope(const SharedProductsScope&) = delete;
    SharedProductsScope& operator=(const SharedProductsScope&) = delete;

private:
    bool previous_;
};

// How many sums of deferred products on this thread read their x's in place from a joined
// gradient (Backward::copied_into) instead of stacking them. For tests and benchmarks.
std::size_t products_read_in_place();
// How many parts of deferred products were started during sweeps on any thread (inside a
// SharedProductsScope, when a variable's products reach early_product_rows rows; core/tape.cpp).
// For tests and benchmarks.
std::size_t products_started_early();

// Records an op's result. When gradients are disabled or no input requires grad, returns a
// plain value and records nothing.
Variable record(const char* op, Tensor result, std::initializer_list<Variable> inputs,
                BackwardFn backward,
                const std::source_location& loc = std::source_location::current());

// Declares which values the backward rule of the op that just recorded `out` reads: the
// inputs listed (by position) and, when `result` is true, its own result. By default a rule
// may read all of them. A recorded value that no rule reads and that nothing outside the
// tape holds any more (a temporary: the gate pre-activations a chunk cuts, a product an add
// consumes) is then released during forward, so its buffer is reused within the step
// instead of being kept until backward. Reading a released value throws GraphError. Returns
// `out`.
Variable reads_only(Variable out, std::initializer_list<std::size_t> inputs, bool result);

// d root / d wanted, as PyTorch's torch.autograd.grad: leaves' `grad` are not touched.
// Inputs the root does not depend on get an undefined Variable.
std::vector<Variable> grad(const Variable& root, std::span<const Variable> wanted,
                           const Tensor& grad_out = {}, BackwardOptions options = {});
std::vector<Variable> grad(const Variable& root, std::initializer_list<Variable> wanted,
                           const Tensor& grad_out = {}, BackwardOptions options = {});

// Anomaly mode: every op result in forward and every gradient in backward is checked for
// NaN/Inf; the first op that produces one throws AnomalyError naming it and its call site.
bool anomaly_enabled();
class AnomalyGuard {
public:
    explicit AnomalyGuard(bool on = true);
    ~AnomalyGuard();
    AnomalyGuard(const AnomalyGuard&) = delete;
    AnomalyGuard& operator=(const AnomalyGuard&) = delete;

private:
    bool previous_;
};

}  // namespace tapegrad
