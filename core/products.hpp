// How the sweep schedules weight-gradient products: a speed component beside the tape
// (core/tape.hpp), which calls it at a few named points. Nothing here changes a gradient's
// value beyond the order of a sum; docs/performance.md says why each part exists.
//
//  - Deferred products. Backward::add_product(i, x, y) queues xᵀ y for input i; when nothing
//    more can reach the input, all its products are summed as ONE product over their stacked
//    rows (a recurrent weight used at T steps: one [M, T*K] x [T*K, N] product).
//  - Early parts. Inside a SharedProductsScope (parallel_backward's shards) a variable's
//    products are summed in parts of 512 rows, each a TBB task started as soon as its rows are
//    in, so an idle thread takes them while this one sweeps on.
//  - Gradients in place. A rule may write a gradient straight into memory registered for it
//    (a gradient destination: one step's gate gradients into the joined gradient of the
//    sequence's projection), and products whose x's lie consecutively in one joined array read
//    them there instead of stacking copies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/variable.hpp"

namespace tapegrad {

class Backward;
class Tape;

// One variable's deferred products xᵀ y, not yet added to its gradient.
struct PendingProducts {
    std::vector<std::pair<Tensor, Tensor>> items;
    bool has_parts = false;  // some were started as early parts in this sweep
    bool empty() const { return items.empty() && !has_parts; }
};

// Memory a gradient may be written into directly: `view` is the tensor the gradient then is,
// `data` where its elements start, writable. None when null.
struct GradientDestination {
    Tensor view;
    void* data = nullptr;
    bool defined() const { return data != nullptr; }
};
// Asked by the rule that wants a destination; returns one or none.
using DestinationFn = std::function<GradientDestination(Backward& asking)>;

// The per-tape state of the scheduling, and the points where the sweep calls it.
class ProductSchedule {
public:
    ProductSchedule();
    ~ProductSchedule();

    // Keys of the variables products are deferred for.
    static std::size_t entry_key(std::size_t entry) { return 2 * entry; }
    static std::size_t leaf_key(std::size_t slot) { return 2 * slot + 1; }

    // Runs one sweep: with early parts and isolated from other TBB work inside a
    // SharedProductsScope; forgets the sweep's in-place records however it ends.
    std::vector<Variable> around_sweep(bool create_graph,
                                       const std::function<std::vector<Variable>()>& sweep);
    // Queues xᵀ y for `pending` (the gradient of `target`, keyed `key`). False when the
    // product cannot be deferred (create_graph, anomaly mode, shapes): the caller adds it now.
    bool defer(Backward& bw, const Variable& target, PendingProducts& pending, std::size_t key,
               const Variable& x, const Variable& y);
    // g plus every product of `pending`: the parts started early, in order, then the rest.
    Variable collect(PendingProducts& pending, std::size_t key, Variable g);

    void reset() { destinations_.clear(); }

private:
    friend GradientDestination destination(Backward&, std::size_t);
    friend GradientDestination destination_of_input(Backward&, const Variable&, std::size_t);
    friend void copied_into(Backward&, const Tensor&, const Tensor&, std::size_t);
    friend void writes_into(Backward&, const Tensor&);
    friend void set_gradient_destination(const Variable&, DestinationFn);
    friend std::uint64_t sweep_number(const Backward&);
    struct Copied {  // a gradient `whole` also lies in `joined` from element `offset` on
        Tensor whole, joined;
        std::size_t offset;
    };
    struct EarlyProducts;
    std::unique_ptr<EarlyProducts> early_;
    std::vector<Copied> copied_;                                     // this sweep's records
    std::unordered_map<std::uint64_t, DestinationFn> destinations_;  // by destination_key
    static std::uint64_t destination_key(const detail::VarImpl& v);  // its entry and result
    std::uint64_t sweep_ = 0;

    void start_early(PendingProducts& pending, std::size_t key, std::size_t rows);
    Variable add_started(std::size_t key, Variable g);
    Variable sum_of(std::vector<std::pair<Tensor, Tensor>>& products);
    static GradientDestination destination_for(Backward& bw, const Variable& wanted);
    static GradientDestination destination_of_input(Backward& bw, const Variable& result,
                                                    std::size_t i);
    static void record_copy(Backward& bw, const Tensor& whole, const Tensor& joined,
                            std::size_t offset);
    static std::uint64_t sweep_of(const Backward& bw);
    static void set_destination(const Variable& v, DestinationFn fn);
};

// ---- What a backward rule may use beyond Backward's own surface (split, elementwise) ----

// Where input i's gradient may be written straight away: a destination registered for it,
// or for the input its gradient passes to unchanged (Reads::passes_gradient_to), while no
// gradient has reached either yet. None with create_graph.
GradientDestination destination(Backward& bw, std::size_t i);
// The destination of input i of the op that recorded `result` (none when its rule has run).
GradientDestination destination_of_input(Backward& bw, const Variable& result, std::size_t i);
// `whole`, a gradient this rule received, now also lies in `joined` (contiguous) from element
// `offset` on: deferred products whose x's fill one range of `joined` read it in place.
void copied_into(Backward& bw, const Tensor& whole, const Tensor& joined, std::size_t offset);
// Ranges of `joined` are handed out as destinations: products read them in place as well.
void writes_into(Backward& bw, const Tensor& joined);
// The running sweep's number on this rule's tape.
std::uint64_t sweep_number(const Backward& bw);
// Registers where the gradient of `v`, recorded on this thread's tape, may be written during a
// sweep: `fn` is asked at most once per request and hands out memory nothing else writes in
// that sweep. The registration lasts as long as the tape's graph.
void set_gradient_destination(const Variable& v, DestinationFn fn);

// While one is alive on a thread, the sums of deferred products of the sweeps run there are
// cut into blocks of 64 rows of the result, computed as TBB tasks, and a variable's products
// are summed in parts started during the sweep. parallel_backward opens one in every shard,
// so the shard that finishes first helps finish the others' weight gradients. The cuts depend
// only on the products' shapes and order: results do not depend on which thread runs what.
class SharedProductsScope {
public:
    SharedProductsScope();
    ~SharedProductsScope();
    SharedProductsScope(const SharedProductsScope&) = delete;
    SharedProductsScope& operator=(const SharedProductsScope&) = delete;

private:
    bool previous_;
};

namespace detail {
// a += g for gradients: in place when nothing else can see `a`, recorded under create_graph.
// Defined with the sweep (core/tape.cpp).
Variable accumulate(Variable a, const Variable& g, bool create_graph);
// Runs v's gradient hooks on g and, with `keep` (backward(), not grad()), keeps the result when
// v retains its gradient; returns the gradient that flows on (core/variable.cpp).
Variable run_hooks(VarImpl& v, Variable g, bool create_graph, bool keep);
}  // namespace detail

}  // namespace tapegrad
