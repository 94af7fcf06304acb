// The tape: an append-only record of the ops run while gradients are enabled, in creation
// order. backward() walks it in reverse — no recursion, no topological sort — so a chain of
// any length backpropagates on a flat loop.
//
// The invariant: an entry is appended after all of its inputs exist, so every input recorded
// on the same tape has a smaller index. Walking the entries from the root down, an entry's
// gradient is complete when its turn comes: every later entry that could add to it has run.
//
// Each thread records on its current tape (a thread-local default, or the one a TapeScope
// installs), so TBB shards of a batch each keep their own tape and never share entries.
//
// An op is one function holding its forward and its backward rule:
//
//   Variable tanh(const Variable& x) {
//       Tensor r = ...forward...;
//       return record("tanh", std::move(r), {x}, {.inputs = no_inputs, .result = true},
//                     [](Backward& b) {
//                         // d tanh(x) = 1 - tanh(x)^2
//                         b.add(0, b.grad_out() * (1.0 - b.result() * b.result()));
//                     });
//   }
//
// An entry may have any number of inputs and results (split records one entry whose results
// are the pieces). Backward rules are written with Variable ops, so with create_graph they are
// recorded too and a gradient is itself differentiable. What a rule reads is said at the call (Reads
// below): values no rule reads are released during forward, so a step's temporaries are
// reused instead of being kept until backward.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <source_location>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/products.hpp"
#include "core/variable.hpp"

namespace tapegrad {

class Backward;
struct Graph;
Graph graph_of(const Variable& root);
using BackwardFn = std::function<void(Backward&)>;
// A recorded op's inputs, held from the cache tensors' buffers come from (core/memory.hpp).
using InputList = std::vector<Variable, BufferAllocator<Variable>>;

// What a backward rule reads, said when the op is recorded.
inline constexpr std::uint64_t all_inputs = ~std::uint64_t{0};
inline constexpr std::uint64_t no_inputs = 0;
// The inputs at these positions, as a Reads::inputs mask: input_mask(0, 2).
template <class... I>
constexpr std::uint64_t input_mask(I... positions) {
    return ((std::uint64_t{1} << positions) | ... | std::uint64_t{0});
}
struct Reads {
    std::uint64_t inputs = all_inputs;  // bit i: the rule reads input i's value
    bool result = true;                 // the rule reads the op's result
    // The input whose gradient is the result's, unchanged, same shape and dtype (addmm's
    // addend): a gradient destination registered for that input then serves the result too.
    int passes_gradient_to = -1;
};

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

    // Leaf gradients of one sweep, in first-reached order.
    struct LeafGrads {
        std::vector<std::shared_ptr<detail::VarImpl>> leaves;
        std::vector<Variable> grads;
        std::vector<PendingProducts> pending;  // per leaf: products summed at the sweep's end
    };

    // The reverse sweep from `root` seeded with `seed`. Returns the gradients that reached
    // the variables in `wanted` (undefined where none did) and, when `leaf_grads` is given,
    // every leaf gradient, without touching any leaf's `grad`.
    std::vector<Variable> run_backward(const Variable& root, const Variable& seed,
                                       std::span<const Variable> wanted, BackwardOptions options,
                                       LeafGrads* leaf_grads);

private:
    friend class Backward;
    friend class ProductSchedule;
    friend class Variable;                   // register_hook, retain_grad
    friend Graph graph_of(const Variable&);  // core/graph.hpp
    friend Variable record(const char*, Tensor, std::span<const Variable>, Reads, BackwardFn,
                           const std::source_location&);
    friend std::vector<Variable> record(const char*, std::vector<Tensor>, std::span<const Variable>,
                                        Reads, BackwardFn, const std::source_location&);
    struct Entry {
        const char* op;
        std::source_location loc;
        InputList inputs;
        BackwardFn backward;  // empty once freed by a backward
        Variable result;      // the op's output (its first, when it has several)
        Variable grad{};      // adjoint, only during a sweep
        std::vector<Variable> more_results{}, more_grads{};  // outputs 1, 2, ... and adjoints
        PendingProducts pending{};    // deferred xᵀ y still to add to grad (core/products.hpp)
        std::uint32_t uses = 0;       // inputs of later entries that are this result
        std::uint32_t readers = 0;    // backward rules that may read the result's value
        std::int32_t passes_to = -1;  // Reads::passes_gradient_to
        bool queued = false;          // in release_queue_
    };
    std::vector<Entry> entries_;
    std::vector<std::uint32_t> release_queue_;  // entries no rule reads: released once unheld
    std::uint32_t records_since_release_ = 0;
    // Entries below this were recorded before a backward, which moves inputs and results
    // out: the references release_unread counts no longer add up, so they are never released.
    std::size_t release_floor_ = 0;
    std::unique_ptr<ProductSchedule> products_;
    std::uint64_t generation_;
    bool in_backward_ = false;
    bool has_hooks_ = false;  // some variable recorded here has hooks or retains its gradient
    std::size_t next_sweep_check_ = 4096;
    // What graph_of reads beside the entries (core/graph.hpp), kept apart so that an entry
    // stays small: the GraphScope each entry was recorded in (0: none; the vector is grown only
    // when scopes are open), scope k's group path (an index into paths: the steps of one group
    // share it, so a step allocates nothing) and time step at [k - 1], and with
    // BackwardOptions::keep_grad_norms ‖d loss / d result‖ per entry (-1: not reached).
    struct GraphNotes {
        std::vector<std::uint32_t> entry_scope;
        std::vector<std::string> paths;
        std::vector<std::uint32_t> scope_paths;
        std::vector<long> scope_steps;
        std::vector<float> grad_norms;
    } notes_;

    Variable& grad_of(const detail::VarImpl& v);  // the adjoint slot of a recorded variable
    std::vector<Variable> sweep(const Variable& root, const Variable& seed,
                                std::span<const Variable> wanted, BackwardOptions options,
                                bool keep_retained, LeafGrads& leaves);
    void unread(std::uint32_t index);  // one rule fewer reads entry `index`'s result
    void release_unread();
    void check_owned(const detail::VarImpl& v, const char* what) const;
    void reset();
    bool referenced_from_outside() const;
    void release_hooks(Entry& e);          // a recorded variable's hooks go with its graph
    void note_scope(std::uint32_t index);  // entry `index` was recorded in the open GraphScope
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
    // Of an op with several results: d loss / d result k (undefined where none reached it).
    const Variable& grad_out(std::size_t k) const { return k ? (*more_grads_)[k - 1] : grad_out_; }
    const Variable& input(std::size_t i) const { return (*inputs_)[i]; }
    // Does input i want a gradient? Rules skip the work for inputs that do not.
    bool needs(std::size_t i) const { return (*inputs_)[i].requires_grad(); }
    // Accumulates g into input i's gradient; broadcasting is undone here (sum_to), so a rule
    // may pass a gradient of the broadcast shape.
    void add(std::size_t i, const Variable& g);
    // Accumulates the matrix product xᵀ y ([K, M]ᵀ [K, N] -> [M, N]) into input i's gradient:
    // a weight's gradient in a matmul's backward. In a plain backward the products are
    // deferred and all of an input's products are summed as ONE product over their stacked
    // rows (core/products.hpp): a recurrent weight used at T steps gets one [M, T*K] x
    // [T*K, N] product instead of T small ones and T additions.
    void add_product(std::size_t i, const Variable& x, const Variable& y);

private:
    friend class Tape;
    friend class ProductSchedule;
    Backward(Tape& tape, std::size_t entry, const Variable& grad_out, bool create_graph)
        : tape_(tape), entry_(entry), grad_out_(grad_out), create_graph_(create_graph) {}
    Tape& tape_;
    std::size_t entry_;
    Variable grad_out_;
    bool create_graph_;
    const InputList* inputs_ = nullptr;
    const std::vector<Variable>* more_grads_ = nullptr;
    std::unordered_map<detail::VarImpl*, std::size_t>* leaf_slots_ = nullptr;
    Tape::LeafGrads* leaf_grads_ = nullptr;
    std::size_t leaf_slot(const Variable& leaf);  // leaf's index in *leaf_grads_, added if new
};

// Records an op's result with its backward rule and what the rule reads. When gradients are
// disabled or no input requires grad, returns a plain value and records nothing. Any number
// of inputs (at most 64 when some are not read).
Variable record(const char* op, Tensor result, std::span<const Variable> inputs, Reads reads,
                BackwardFn backward,
                const std::source_location& loc = std::source_location::current());
Variable record(const char* op, Tensor result, std::initializer_list<Variable> inputs, Reads reads,
                BackwardFn backward,
                const std::source_location& loc = std::source_location::current());
// An op with several results (split: the pieces), recorded as one entry: its rule reads their
// gradients with grad_out(k). Returns the results, or plain values when nothing is recorded.
std::vector<Variable> record(const char* op, std::vector<Tensor> results,
                             std::span<const Variable> inputs, Reads reads, BackwardFn backward,
                             const std::source_location& loc = std::source_location::current());
// The same, for a rule that may read every input and its result.
Variable record(const char* op, Tensor result, std::initializer_list<Variable> inputs,
                BackwardFn backward,
                const std::source_location& loc = std::source_location::current());

// d root / d wanted, as PyTorch's torch.autograd.grad: no grad() is touched (leaves' or
// retained ones); hooks run as in backward().
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
