#include "core/tape.hpp"

#include <algorithm>
#include <atomic>
#include <deque>
#include <exception>
#include <fmt/format.h>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "core/blas.hpp"
#include "core/packed_gemm.hpp"
#include "ops/arith.hpp"
#include "ops/linalg.hpp"
#include "ops/shape.hpp"

namespace tapegrad {

namespace {
std::atomic<std::uint64_t> next_generation{1};
thread_local Tape default_tape;
thread_local Tape* active_tape = nullptr;
thread_local bool grad_mode = true;
thread_local bool anomaly_mode = false;
thread_local bool share_products = false;  // a SharedProductsScope is open on this thread
// The op whose backward rule is running on this thread, for anomaly messages.
thread_local const char* backward_op = nullptr;
thread_local std::source_location backward_loc;

// The tape looks for unreferenced graphs when it reaches this many entries (then at twice
// the size while something still refers to them).
constexpr std::size_t first_sweep_check = 4096;

std::string describe(const Variable& v) {
    return fmt::format("{} {}", to_string(v.shape()), name(v.dtype()));
}

// a += g for gradients. In place when nothing else can see `a`; recorded when building a
// graph of the backward pass.
Variable accumulate(Variable a, const Variable& g, bool create_graph) {
    if (!a.defined()) return g;
    if (create_graph) return add(a, g);
    if (a.impl_ptr().use_count() == 1) {
        Tensor& value = a.impl()->value;
        if (value.shape() == g.shape()) value.add_(g.value());
        else dispatch(value.dtype(), [&]<class T>() { value.mutable_xt<T>() += g.value().xt<T>(); });
        return a;
    }
    NoGradGuard no_grad;
    return add(a, g);
}
}  // namespace

// Inside a SharedProductsScope a variable's deferred products are summed in parts of at least
// this many rows of x's, each part started as a TBB task as soon as the sweep has added its
// last product: another thread with nothing to do takes them while this one goes on with the
// sweep, instead of waiting for the sweep's end to help. The parts depend only on the
// sequence of products, so results do not depend on which thread runs which part.
constexpr std::size_t early_product_rows = 512;

struct Tape::EarlyProducts {
    // Whose products: 2 * entry index for a recorded variable, 2 * slot + 1 for a leaf.
    static std::size_t of_entry(std::size_t index) { return 2 * index; }
    static std::size_t of_leaf(std::size_t slot) { return 2 * slot + 1; }
    struct Part {
        std::size_t key;
        Tensor sum;          // written by the task
        bool added = false;  // to its variable's gradient
    };
    tbb::task_group group;
    std::unordered_map<std::size_t, std::size_t> rows;  // by key: rows of products not yet started
    std::deque<Part> started;  // in the order started (a deque: its elements never move)
    EarlyProducts() = default;
    EarlyProducts(const EarlyProducts&) = delete;
    EarlyProducts& operator=(const EarlyProducts&) = delete;
    ~EarlyProducts() {  // a sweep that stopped early: its parts are still read from and written to
        try {
            group.wait();
        } catch (...) {  // the sweep's own exception is the one that propagates
        }
    }
};

Tape::Tape() : generation_(next_generation++) {}
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

void Tape::reset() {
    entries_.clear();
    destinations_.clear();
    release_queue_.clear();
    records_since_release_ = 0;
    release_floor_ = 0;
    generation_ = next_generation++;
}

void Tape::clear() {
    if (in_backward_) throw GraphError("Tape::clear: called from inside a backward pass");
    reset();
}

std::size_t Tape::saved_bytes() const {
    std::size_t bytes = 0;
    for (const auto& e : entries_)
        if (e.result.defined() && !e.result.released()) bytes += e.result.value().nbytes();
    return bytes;
}

// True when a variable outside the tape (held by the user, or a leaf's create_graph
// gradient) still refers to a live entry's result. Counts the references the tape itself
// holds: one per entry for its result, one per use as an input.
bool Tape::referenced_from_outside() const {
    std::vector<long> internal(entries_.size(), 0);
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        if (entries_[i].result.defined()) internal[i] += 1;
        for (const auto& in : entries_[i].inputs) {
            const auto* v = in.impl();
            if (v && v->tape == this && v->generation == generation_) internal[v->index] += 1;
        }
    }
    for (std::size_t i = 0; i < entries_.size(); ++i)
        if (entries_[i].result.defined() && entries_[i].result.impl_ptr().use_count() > internal[i])
            return true;
    return false;
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

Variable record(const char* op, Tensor result, std::initializer_list<Variable> inputs,
                BackwardFn backward, const std::source_location& loc) {
    if (anomaly_mode && !all_finite(result)) {
        if (backward_op)
            fail<AnomalyError>(backward_op, fmt::format("backward produced NaN or Inf (in its '{}' "
                                                        "step, result {})", op,
                                                        to_string(result.shape())), backward_loc);
        fail<AnomalyError>(op, fmt::format("produced NaN or Inf in its forward result {}",
                                           to_string(result.shape())), loc);
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
            fail<GraphError>(op, "an input was recorded on another tape (each thread and each "
                                 "TapeScope records on its own; a TBB shard must not use another "
                                 "shard's variables)", loc);
    }
    // A forward-only loop (no backward) would grow the tape forever; when a new graph starts
    // (no input on this tape) on a large tape, release it if nothing outside refers to it.
    if (tape.entries_.size() >= tape.next_sweep_check_ && !tape.in_backward_) {
        bool starts_graph = true;
        for (const auto& in : inputs) starts_graph = starts_graph && (!in.impl() || !in.impl()->tape);
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
    tape.entries_.push_back(Tape::Entry{op, loc, InputList(inputs), std::move(backward),
                                        out, {}, {}});
    // Until reads_only says otherwise, this rule may read its result and every input.
    tape.entries_.back().readers = 1;
    for (const auto& in : inputs) {
        const auto* v = in.impl();
        if (v && v->tape == &tape && v->generation == tape.generation_) {
            ++tape.entries_[v->index].uses;
            ++tape.entries_[v->index].readers;
        }
    }
    if (++tape.records_since_release_ >= 16 && !tape.in_backward_) tape.release_unread();
    return out;
}

Tape::Entry* Tape::just_recorded(const Variable& out) {
    const auto* v = out.impl();
    if (!v || !v->tape || v->tape != &current_tape()) return nullptr;
    Tape& tape = *v->tape;
    if (v->generation != tape.generation_ || v->index + 1 != tape.entries_.size()) return nullptr;
    return &tape.entries_[v->index];
}

Variable reads_only(Variable out, std::initializer_list<std::size_t> inputs, bool result) {
    Tape::Entry* entry = Tape::just_recorded(out);
    if (!entry) return out;
    const auto* v = out.impl();
    Tape& tape = *v->tape;
    Tape::Entry& e = *entry;
    auto unread = [&](Tape::Entry& t, std::uint32_t index) {
        if (--t.readers == 0 && !t.queued && index >= tape.release_floor_) {
            t.queued = true;
            tape.release_queue_.push_back(index);
        }
    };
    if (!result) unread(e, v->index);
    for (std::size_t i = 0; i < e.inputs.size(); ++i) {
        if (std::find(inputs.begin(), inputs.end(), i) != inputs.end()) continue;
        const auto* in = e.inputs[i].impl();
        if (in && in->tape == &tape && in->generation == tape.generation_)
            unread(tape.entries_[in->index], in->index);
    }
    return out;
}

Variable passes_gradient(Variable out, std::size_t input) {
    Tape::Entry* entry = Tape::just_recorded(out);
    if (!entry) return out;
    Tape::Entry& e = *entry;
    if (input < e.inputs.size() && e.inputs[input].defined() && e.inputs[input].shape() == out.shape() &&
        e.inputs[input].dtype() == out.dtype())
        e.passes_to = static_cast<std::int32_t>(input);
    return out;
}

void set_gradient_destination(const Variable& v, DestinationFn fn) {
    const auto* impl = v.impl();
    if (!impl || !impl->tape || impl->tape != &current_tape()) return;
    Tape& tape = *impl->tape;
    if (impl->generation != tape.generation_) return;
    tape.destinations_[impl->index] = std::move(fn);
}

// Drops the values of queued entries that no backward rule reads once nothing outside the
// tape holds them: the tape's own references are the entry's result and its later uses as
// an input. A value still held stays queued; one a later rule reads leaves the queue.
void Tape::release_unread() {
    records_since_release_ = 0;
    std::size_t kept = 0;
    for (std::uint32_t index : release_queue_) {
        Entry& e = entries_[index];
        if (e.readers > 0 || !e.result.defined() || e.result.released()) {
            e.queued = false;
            continue;
        }
        if (e.result.impl_ptr().use_count() == 1 + static_cast<long>(e.uses)) {
            detail::VarImpl* impl = e.result.impl();
            impl->released_shape = impl->value.shape();
            impl->released_dtype = impl->value.dtype();
            impl->value = Tensor();
            impl->released = true;
            e.queued = false;
            continue;
        }
        release_queue_[kept++] = index;
    }
    release_queue_.resize(kept);
}

Variable Backward::result() const { return tape_.entries_[entry_].result; }

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
        fail<DTypeError>(op, fmt::format("backward produced a {} gradient for {} input {}",
                                         name(g.dtype()), describe(in), i), loc);
    if (g.shape() != in.shape()) g = sum_to(g, in.shape());
    if (anomaly_mode && !all_finite(g.value()))
        fail<AnomalyError>(op, fmt::format("backward produced NaN or Inf in the gradient of "
                                           "input {} ({})", i, describe(in)), loc);
    auto* v = in.impl();
    if (v->tape == nullptr) {  // a leaf
        auto& acc = leaf_grads_->grads[leaf_slot(in)];
        acc = accumulate(std::move(acc), g, create_graph_);
        return;
    }
    tape_.check_owned(*v, op);
    // No reference into entries_ across accumulate(): with create_graph it records, and the
    // vector may reallocate.
    Variable sum = accumulate(std::move(tape_.entries_[v->index].grad), g, create_graph_);
    tape_.entries_[v->index].grad = std::move(sum);
}

void Backward::add_product(std::size_t i, const Variable& x, const Variable& y) {
    const Variable& in = (*inputs_)[i];
    if (!in.requires_grad()) return;
    const detail::VarImpl* v = in.impl();
    const bool deferrable = !create_graph_ && !anomaly_mode && (v->tape == nullptr || v->tape == &tape_) &&
                            x.dim() == 2 && y.dim() == 2 && x.shape()[0] == y.shape()[0] &&
                            in.shape() == Shape{x.shape()[1], y.shape()[1]} && x.dtype() == in.dtype() &&
                            y.dtype() == in.dtype();
    if (!deferrable) {
        add(i, matmul(x, y, true, false));
        return;
    }
    if (v->tape == nullptr) {
        const std::size_t slot = leaf_slot(in);
        auto& pending = leaf_grads_->pending[slot];
        pending.emplace_back(x.value(), y.value());
        if (tape_.early_) tape_.start_early(pending, Tape::EarlyProducts::of_leaf(slot), x.shape()[0]);
        return;
    }
    tape_.check_owned(*v, tape_.entries_[entry_].op);
    Tape::Entry& e = tape_.entries_[v->index];
    e.pending.emplace_back(x.value(), y.value());
    if (!tape_.early_) return;
    e.has_parts = true;
    tape_.start_early(e.pending, Tape::EarlyProducts::of_entry(v->index), x.shape()[0]);
}

namespace {
thread_local std::size_t stacked_in_place_count = 0;
std::atomic<std::size_t> started_early_count{0};  // on any thread
}  // namespace

std::size_t products_read_in_place() { return stacked_in_place_count; }
std::size_t products_started_early() { return started_early_count; }

std::uint64_t Backward::sweep() const { return tape_.sweep_; }

GradientDestination Backward::destination(std::size_t i) { return destination_for((*inputs_)[i]); }

GradientDestination Backward::destination_of_input(const Variable& result, std::size_t i) {
    const detail::VarImpl* v = result.impl();
    if (!v || v->tape != &tape_ || v->generation != tape_.generation_) return {};
    const Tape::Entry& e = tape_.entries_[v->index];
    if (!e.backward || i >= e.inputs.size()) return {};
    const Variable input = e.inputs[i];  // a copy: a DestinationFn may look further
    return destination_for(input);
}

GradientDestination Backward::destination_for(const Variable& wanted) {
    if (create_graph_ || !wanted.requires_grad()) return {};
    const Variable* in = &wanted;
    for (int hops = 0; hops < 16; ++hops) {
        const detail::VarImpl* v = in->impl();
        if (!v || !v->requires_grad || v->tape != &tape_ || v->generation != tape_.generation_) return {};
        const Tape::Entry& e = tape_.entries_[v->index];
        // a gradient already there (or still to come from deferred products) is added to
        if (!e.backward || e.grad.defined() || !e.pending.empty() || e.has_parts) return {};
        if (auto it = tape_.destinations_.find(v->index); it != tape_.destinations_.end()) {
            GradientDestination d = it->second(*this);  // may look up others, registers none
            if (!d.defined() || d.view.shape() != wanted.shape() || d.view.dtype() != wanted.dtype())
                return {};
            return d;
        }
        if (e.passes_to < 0) return {};
        in = &e.inputs[static_cast<std::size_t>(e.passes_to)];
    }
    return {};
}

void Backward::copied_into(const Tensor& whole, const Tensor& joined, std::size_t offset) {
    // Only gradients someone else still holds (a deferred product) are worth finding again;
    // keeping a record holds the gradient until the sweep ends.
    if (create_graph_ || whole.is_view() || whole.unique() || joined.is_view()) return;
    tape_.copied_.push_back({whole, joined, offset});
}

void Backward::writes_into(const Tensor& joined) {
    if (create_graph_ || joined.is_view()) return;
    tape_.copied_.push_back({joined, joined, 0});
}

namespace {
// Gradients of at most this many elements ([512,128] of a small LSTM's W_hh) run on the
// packed kernel (core/packed_gemm.hpp), which reads x as it lies: from 1600 stacked rows,
// [512,128] went from 176 to 188 GFLOP/s and [512,32] from 139 to 205 against OpenBLAS. For
// larger ones OpenBLAS is faster ([1024,256] from 6400 rows: 174 against 162).
constexpr std::size_t packed_gradient_max = std::size_t{1} << 16;
// ... and of at most this many rows: the kernel reads the stacked x's down their columns, m
// floats apart, and from 768 on ([768,64] and [1024,64] from 6400 rows of a large GRU's and
// LSTM's input weight) it fell to 45-63 GFLOP/s against OpenBLAS's 75-94 (Intel Xeon,
// AVX-512); at 512 ([512,32] from 1600 rows) the two were even (96 and 93).
constexpr std::size_t packed_gradient_max_rows = 512;

// The rows of the tensors of one side of an input's deferred products, stacked into one
// [ΣK, cols] matrix (or the one tensor itself).
Tensor stacked(const std::vector<std::pair<Tensor, Tensor>>& products, bool second) {
    auto side = [&](const auto& p) -> const Tensor& { return second ? p.second : p.first; };
    if (products.size() == 1) return side(products[0]);
    std::size_t rows = 0;
    for (const auto& p : products) rows += side(p).shape()[0];
    const Tensor& first = side(products[0]);
    Tensor out = Tensor::empty({rows, first.shape()[1]}, first.dtype());
    dispatch(first.dtype(), [&]<class T>() {
        T* to = out.mutable_xt<T>().data();
        for (const auto& p : products) to = std::copy_n(side(p).template data<T>(), side(p).numel(), to);
    });
    return out;
}

// The x's of the products read in place, when each was copied whole into one joined array
// (Backward::copied_into) and together they fill one range of it: that range as a [ΣK, M]
// view, with `products` reordered to follow it. Undefined otherwise.
Tensor stacked_in_place(std::vector<std::pair<Tensor, Tensor>>& products,
                        const std::vector<Tape::Copied>& copied) {
    if (products.size() < 2 || copied.empty()) return {};
    std::vector<std::pair<std::size_t, std::size_t>> at;  // (offset in the joined array, product)
    const Tensor* joined = nullptr;
    for (std::size_t k = 0; k < products.size(); ++k) {
        const Tensor& x = products[k].first;
        if (x.is_view()) {
            // a gradient written straight into a joined array (Backward::destination)
            auto c = std::find_if(copied.rbegin(), copied.rend(),
                                  [&](const Tape::Copied& c) { return c.joined.shares_storage_with(x); });
            if (c == copied.rend() || (joined && !c->joined.shares_storage_with(*joined))) return {};
            const std::ptrdiff_t offset = dispatch(x.dtype(), [&]<class T>() -> std::ptrdiff_t {
                const auto r = x.rows<T>();
                return r.contiguous() ? r.data - c->joined.rows<T>().data : -1;
            });
            if (offset < 0) return {};
            joined = &c->joined;
            at.emplace_back(static_cast<std::size_t>(offset), k);
            continue;
        }
        auto c = std::find_if(copied.rbegin(), copied.rend(),
                              [&](const Tape::Copied& c) { return c.whole.shares_storage_with(x); });
        if (c == copied.rend() || (joined && !c->joined.shares_storage_with(*joined))) return {};
        joined = &c->joined;
        at.emplace_back(c->offset, k);
    }
    std::sort(at.begin(), at.end());
    std::size_t rows = 0, end = at.front().first;
    for (const auto& [offset, k] : at) {
        if (offset != end) return {};  // a gap or an overlap
        end += products[k].first.numel();
        rows += products[k].first.shape()[0];
    }
    std::vector<std::pair<Tensor, Tensor>> ordered;
    for (const auto& [offset, k] : at) ordered.push_back(std::move(products[k]));
    products = std::move(ordered);
    ++stacked_in_place_count;
    const std::size_t n = end - at.front().first;
    return Tensor::view(*joined, {rows, n / rows}, at.front().first, 1, n, n);
}

constexpr std::size_t shared_block_rows = 64;

// f(row0, rows) over [0, m) in blocks of shared_block_rows; inside a SharedProductsScope as
// TBB tasks other threads may take, isolated so that this thread, waiting for them, takes
// no unrelated work (another shard) in the middle of its sweep.
template <class F>
void for_row_blocks(std::size_t m, F&& f) {
    const std::size_t blocks = (m + shared_block_rows - 1) / shared_block_rows;
    auto block = [&](std::size_t b) {
        const std::size_t row0 = b * shared_block_rows;
        f(row0, std::min(shared_block_rows, m - row0));
    };
    if (!share_products || blocks < 2) {
        f(std::size_t{0}, m);
        return;
    }
    tbb::this_task_arena::isolate([&] {
        tbb::parallel_for(tbb::blocked_range<std::size_t>(0, blocks, 1), [&](const tbb::blocked_range<std::size_t>& r) {
            for (std::size_t b = r.begin(); b < r.end(); ++b) block(b);
        }, tbb::simple_partitioner());
    });
}

// xᵀ y for x [K, M], y [K, N]. A weight gradient much taller than wide ([4H, I] of an input
// weight) is faster with OpenBLAS as (yᵀ x)ᵀ: [512,32] from 1600 rows went from 99 to 142
// GFLOP/s, [1024,64] from 6400 rows from 162 to 208; for wide outputs it is not. Otherwise
// one gemm, in blocks of rows inside a SharedProductsScope.
Variable transposed_product(const Tensor& xs, const Tensor& ys) {
    const std::size_t k = xs.shape()[0], m = xs.shape()[1], n = ys.shape()[1];
    if (n <= 64 && m >= 2 * n) return transpose(matmul(Variable(ys), Variable(xs), true, false), 0, 1);
    Tensor out = Tensor::empty({m, n}, xs.dtype());
    dispatch(xs.dtype(), [&]<class T>() {
        const T* x = xs.data<T>();
        const T* y = ys.data<T>();
        T* c = out.mutable_xt<T>().data();
        for_row_blocks(m, [&](std::size_t row0, std::size_t rows) {
            if (k == 0) std::fill_n(c + row0 * n, rows * n, T(0));
            else gemm(true, false, rows, n, k, x + row0, m, y, n, c + row0 * n);
        });
    });
    return Variable(std::move(out));
}

// Σ xᵢᵀ yᵢ over an input's deferred products, as ONE product over their stacked rows. Small
// float32 results run on the packed kernel, which packs the y's straight from their tensors
// and reads the stacked x's as they lie; the rest go to OpenBLAS. Inside a SharedProductsScope
// both run in blocks of rows.
//
// `xs` is what stacked_in_place found for them, or undefined.
Variable sum_of_products(const std::vector<std::pair<Tensor, Tensor>>& products, Tensor xs) {
    const std::size_t m = products[0].first.shape()[1], n = products[0].second.shape()[1];
    if (!xs.defined()) xs = stacked(products, false);
    if (xs.dtype() == DType::float32 && m * n <= packed_gradient_max && m <= packed_gradient_max_rows &&
        packed_gemm::available()) {
        std::vector<packed_gemm::RowBlock> ys;
        for (const auto& [x, y] : products) ys.push_back({y.data<float>(), y.shape()[0]});
        const packed_gemm::PackedMatrix packed(ys, n);
        Tensor out = Tensor::empty({m, n}, DType::float32);
        const float* at = xs.data<float>();
        float* c = out.mutable_xt<float>().data();
        for_row_blocks(m, [&](std::size_t row0, std::size_t rows) {
            packed.multiply_transposed(rows, at + row0, m, c + row0 * n);
        });
        return Variable(std::move(out));
    }
    return transposed_product(xs, stacked(products, true));
}

Variable sum_of_products(std::vector<std::pair<Tensor, Tensor>>& products, const std::vector<Tape::Copied>& copied) {
    Tensor xs = stacked_in_place(products, copied);  // reorders products to follow xs
    return sum_of_products(products, std::move(xs));
}
}  // namespace

void Tape::start_early(std::vector<std::pair<Tensor, Tensor>>& pending, std::size_t key, std::size_t rows) {
    EarlyProducts& early = *early_;
    std::size_t& waiting = early.rows[key];
    if ((waiting += rows) < early_product_rows) return;
    waiting = 0;
    std::vector<std::pair<Tensor, Tensor>> part = std::move(pending);
    pending.clear();
    Tensor xs = stacked_in_place(part, copied_);  // here: copied_ grows as the sweep goes on
    Tensor& sum = early.started.emplace_back(EarlyProducts::Part{key, Tensor()}).sum;
    ++started_early_count;
    early.group.run([part = std::move(part), xs = std::move(xs), &sum] {
        SharedProductsScope share;  // cut into the same blocks on whichever thread
        sum = sum_of_products(part, xs).value();
    });
}

Variable Tape::add_started(std::size_t key, Variable g) {
    if (!early_->rows.contains(key)) return g;
    early_->group.wait();
    for (EarlyProducts::Part& part : early_->started) {
        if (part.key != key || part.added) continue;
        g = accumulate(std::move(g), Variable(std::move(part.sum)), false);
        part.added = true;
    }
    return g;
}

SharedProductsScope::SharedProductsScope() : previous_(share_products) { share_products = true; }
SharedProductsScope::~SharedProductsScope() { share_products = previous_; }

std::vector<Variable> Tape::run_backward(const Variable& root, const Variable& seed,
                                         std::span<const Variable> wanted,
                                         BackwardOptions options, LeafGrads* leaf_grads) {
    if (in_backward_)
        throw GraphError("backward: called from inside a backward rule; nested backward passes "
                         "are not supported");
    if (share_products && !early_ && !options.create_graph) {
        // The sweep isolated, so that this thread, waiting for its parts at the end, takes no
        // unrelated work (another shard) instead; other threads do take its parts.
        early_ = std::make_unique<EarlyProducts>();
        struct Done {  // waits for the parts, however the sweep ends
            std::unique_ptr<EarlyProducts>& early;
            ~Done() { early.reset(); }
        } done{early_};
        return tbb::this_task_arena::isolate(
            [&] { return run_backward(root, seed, wanted, options, leaf_grads); });
    }
    check_owned(*root.impl(), "backward");
    const std::size_t r = root.impl()->index;
    if (!entries_[r].backward)
        throw GraphError(fmt::format(
            "backward: the graph of '{}'{} was already freed by an earlier backward(); pass "
            "retain_graph=true to that call to run backward over it again",
            entries_[r].op, where(entries_[r].loc).empty() ? "" : " at " + where(entries_[r].loc)));
    const bool retain = options.retain_graph || options.create_graph;
    for (std::uint32_t index : release_queue_) entries_[index].queued = false;
    release_queue_.clear();
    release_floor_ = entries_.size();
    ++sweep_;

    std::unordered_map<const detail::VarImpl*, std::size_t> wanted_slot;
    for (std::size_t k = 0; k < wanted.size(); ++k) {
        if (!wanted[k].requires_grad())
            throw GraphError(fmt::format("grad: input {} ({}) does not require grad", k,
                                         describe(wanted[k])));
        wanted_slot.emplace(wanted[k].impl(), k);
    }
    std::vector<Variable> out(wanted.size());

    LeafGrads local;
    LeafGrads& leaves = leaf_grads ? *leaf_grads : local;
    leaves.pending.resize(leaves.leaves.size());  // a slot per leaf (see Backward::leaf_slot)
    std::unordered_map<detail::VarImpl*, std::size_t> leaf_slots;
    for (std::size_t k = 0; k < leaves.leaves.size(); ++k) leaf_slots.emplace(leaves.leaves[k].get(), k);

    struct Sweep {  // restores the flag however the sweep ends
        bool& flag;
        explicit Sweep(bool& f) : flag(f) { flag = true; }
        ~Sweep() { flag = false; }
    } sweep(in_backward_);
    GradModeGuard mode(options.create_graph);

    // Products deferred into recorded variables are added before those variables' rules run;
    // if the sweep stops early, the ones not reached are dropped with it.
    struct DropPending {
        std::vector<Entry>& entries;
        int exceptions = std::uncaught_exceptions();
        ~DropPending() {
            if (std::uncaught_exceptions() > exceptions)
                for (Entry& e : entries) {
                    e.pending.clear();
                    e.has_parts = false;
                }
        }
    } drop_pending{entries_};
    struct ForgetCopied {  // copied_into records last for one sweep
        std::vector<Copied>& copied;
        ~ForgetCopied() { copied.clear(); }
    } forget_copied{copied_};

    entries_[r].grad = seed;
    for (std::size_t i = r + 1; i-- > 0;) {
        Variable g = std::move(entries_[i].grad);
        entries_[i].grad = Variable();
        if (entries_[i].has_parts) {
            g = add_started(EarlyProducts::of_entry(i), std::move(g));
            entries_[i].has_parts = false;
        }
        if (!entries_[i].pending.empty()) {
            g = accumulate(std::move(g), sum_of_products(entries_[i].pending, copied_), false);
            entries_[i].pending.clear();
        }
        if (!g.defined()) continue;
        if (auto it = wanted_slot.find(entries_[i].result.impl()); it != wanted_slot.end())
            out[it->second] = g;
        if (!entries_[i].backward)
            throw GraphError(fmt::format(
                "backward: the graph through '{}'{} was already freed by an earlier backward(); "
                "pass retain_graph=true to that call",
                entries_[i].op, where(entries_[i].loc).empty() ? "" : " at " + where(entries_[i].loc)));
        // Move the rule and its inputs out: with create_graph the rule appends entries and
        // the vector may reallocate under us.
        BackwardFn fn = std::move(entries_[i].backward);
        InputList inputs = std::move(entries_[i].inputs);
        entries_[i].backward = nullptr;
        Backward ctx(*this, i, g, options.create_graph);
        ctx.inputs_ = &inputs;
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
            entries_[i].result = Variable();  // release the saved value as we go
        }
    }
    for (std::size_t k = 0; k < leaves.pending.size(); ++k) {
        if (early_) leaves.grads[k] = add_started(EarlyProducts::of_leaf(k), std::move(leaves.grads[k]));
        if (leaves.pending[k].empty()) continue;
        leaves.grads[k] = accumulate(std::move(leaves.grads[k]), sum_of_products(leaves.pending[k], copied_), false);
        leaves.pending[k].clear();
    }
    for (std::size_t k = 0; k < leaves.leaves.size(); ++k)
        if (auto it = wanted_slot.find(leaves.leaves[k].get()); it != wanted_slot.end())
            out[it->second] = leaves.grads[k];
    if (!retain && !referenced_from_outside()) reset();
    return out;
}

namespace {
Variable make_seed(const Variable& root, const Tensor& grad_out, const char* what) {
    if (!root.defined()) throw GraphError(std::string(what) + ": the variable is undefined");
    if (!root.requires_grad())
        throw GraphError(fmt::format(
            "{}: the variable ({}) does not require grad: no input of its graph requires grad, or "
            "it was computed under NoGradGuard",
            what, describe(root)));
    if (!grad_out.defined()) {
        if (root.numel() != 1)
            throw GraphError(fmt::format(
                "{}: the output {} is not a scalar; pass grad_out of that shape", what,
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
        g = accumulate(std::move(acc), seed, false).impl_ptr();
        return;
    }
    Tape::LeafGrads leaves;
    current_tape().run_backward(*this, seed, {}, options, &leaves);
    for (std::size_t k = 0; k < leaves.leaves.size(); ++k) {
        auto& g = leaves.leaves[k]->grad;
        Variable acc = g ? Variable(g) : Variable();
        g.reset();
        g = accumulate(std::move(acc), leaves.grads[k], options.create_graph).impl_ptr();
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
