#include "core/products.hpp"

#include <algorithm>
#include <atomic>
#include <deque>
#include <exception>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "core/counters.hpp"
#include "core/engine_ops.hpp"
#include "core/tape.hpp"
#include "kernels/blas.hpp"
#include "kernels/packed_gemm.hpp"

namespace tapegrad {

namespace {
thread_local bool share_products = false;  // a SharedProductsScope is open on this thread
thread_local std::size_t stacked_in_place_count = 0;
std::atomic<std::size_t> started_early_count{0};  // on any thread

// Inside a SharedProductsScope a variable's products are summed in parts of at least this
// many rows of x's, each started as soon as the sweep has added its last product.
constexpr std::size_t early_product_rows = 512;
// Sums of products are cut into blocks of this many rows of the result inside the scope.
constexpr std::size_t shared_block_rows = 64;
// Gradients of at most this many elements ([512,128] of a small LSTM's W_hh) and rows run on
// the packed kernel (kernels/packed_gemm.hpp), which reads the stacked x's as they lie; larger
// ones on OpenBLAS (docs/performance.md has the measurements).
constexpr std::size_t packed_gradient_max = std::size_t{1} << 16;
constexpr std::size_t packed_gradient_max_rows = 512;

using Products = std::vector<std::pair<Tensor, Tensor>>;

// The rows of one side of the products, stacked into one [ΣK, cols] matrix (or the one
// tensor itself).
Tensor stacked(const Products& products, bool second) {
    auto side = [&](const auto& p) -> const Tensor& { return second ? p.second : p.first; };
    if (products.size() == 1) return side(products[0]);
    std::size_t rows = 0;
    for (const auto& p : products) rows += side(p).shape()[0];
    const Tensor& first = side(products[0]);
    Tensor out = Tensor::empty({rows, first.shape()[1]}, first.dtype());
    dispatch(first.dtype(), [&]<class T>() {
        T* to = out.mutable_xt<T>().data();
        for (const auto& p : products)
            to = std::copy_n(side(p).template data<T>(), side(p).numel(), to);
    });
    return out;
}

// f(row0, rows) over [0, m) in blocks of shared_block_rows; inside a SharedProductsScope as
// TBB tasks other threads may take, isolated so that this thread, waiting for them, takes no
// unrelated work (another shard) in the middle of its sweep.
template <class F>
void for_row_blocks(std::size_t m, F&& f) {
    const std::size_t blocks = (m + shared_block_rows - 1) / shared_block_rows;
    if (!share_products || blocks < 2) {
        f(std::size_t{0}, m);
        return;
    }
    tbb::this_task_arena::isolate([&] {
        tbb::parallel_for(
            tbb::blocked_range<std::size_t>(0, blocks, 1),
            [&](const tbb::blocked_range<std::size_t>& r) {
                for (std::size_t b = r.begin(); b < r.end(); ++b) {
                    const std::size_t row0 = b * shared_block_rows;
                    f(row0, std::min(shared_block_rows, m - row0));
                }
            },
            tbb::simple_partitioner());
    });
}

// xᵀ y for x [K, M], y [K, N]. A result much taller than wide ([4H, I] of an input weight) is
// faster with OpenBLAS as (yᵀ x)ᵀ; otherwise one gemm, in blocks of rows inside the scope.
Tensor transposed_product(const Tensor& xs, const Tensor& ys) {
    const std::size_t k = xs.shape()[0], m = xs.shape()[1], n = ys.shape()[1];
    Tensor out = Tensor::empty({m, n}, xs.dtype());
    if (n <= 64 && m >= 2 * n) {
        const Tensor t = matmul(Variable(ys), Variable(xs), true, false, {}).value();  // [n, m]
        dispatch(xs.dtype(), [&]<class T>() {
            const T* from = t.data<T>();
            T* to = out.mutable_xt<T>().data();
            for (std::size_t i = 0; i < m; ++i)
                for (std::size_t j = 0; j < n; ++j) to[i * n + j] = from[j * m + i];
        });
        return out;
    }
    dispatch(xs.dtype(), [&]<class T>() {
        const auto x = xs.rows<T>();  // in place, rows `stride` apart (a view of a joined array)
        const std::size_t ldx = x.rows > 1 ? x.stride : m;
        const T* y = ys.data<T>();
        T* c = out.mutable_xt<T>().data();
        for_row_blocks(m, [&](std::size_t row0, std::size_t rows) {
            if (k == 0) std::fill_n(c + row0 * n, rows * n, T(0));
            else gemm(true, false, rows, n, k, x.data + row0, ldx, y, n, c + row0 * n);
        });
    });
    return out;
}

// Σ xᵢᵀ yᵢ as ONE product over the stacked rows. `xs` is the x's stacked in place, or
// undefined. Small float32 results run on the packed kernel, the rest on OpenBLAS.
Tensor sum_of_products(const Products& products, Tensor xs) {
    const std::size_t m = products[0].first.shape()[1], n = products[0].second.shape()[1];
    if (!xs.defined()) xs = stacked(products, false);
    if (xs.dtype() == DType::float32 && m * n <= packed_gradient_max &&
        m <= packed_gradient_max_rows && packed_gemm::available()) {
        std::vector<packed_gemm::RowBlock> ys;
        for (const auto& [x, y] : products) ys.push_back({y.data<float>(), y.shape()[0]});
        const packed_gemm::PackedMatrix packed(ys, n);
        Tensor out = Tensor::empty({m, n}, DType::float32);
        const auto at = xs.rows<float>();  // in place, rows `stride` apart
        const std::size_t ldat = at.rows > 1 ? at.stride : m;
        float* c = out.mutable_xt<float>().data();
        for_row_blocks(m, [&](std::size_t row0, std::size_t rows) {
            packed.multiply_transposed(rows, at.data + row0, ldat, c + row0 * n);
        });
        return out;
    }
    return transposed_product(xs, stacked(products, true));
}
}  // namespace

std::uint64_t ProductSchedule::destination_key(const detail::VarImpl& v) {
    return std::uint64_t{v.index} << 32 | v.output;
}

struct ProductSchedule::EarlyProducts {
    struct Part {
        std::size_t key;
        Tensor sum;          // written by the task
        bool added = false;  // to its variable's gradient
    };
    tbb::task_group group;
    std::unordered_map<std::size_t, std::size_t> rows;  // by key: rows not yet started
    std::deque<Part> started;  // in the order started (a deque: its elements never move)
    EarlyProducts() = default;
    EarlyProducts(const EarlyProducts&) = delete;
    EarlyProducts& operator=(const EarlyProducts&) = delete;
    ~EarlyProducts() {  // a sweep that stopped early: its parts still read and write
        try {
            group.wait();
        } catch (...) {  // the sweep's own exception is the one that propagates
        }
    }
};

ProductSchedule::ProductSchedule() = default;
ProductSchedule::~ProductSchedule() = default;

SharedProductsScope::SharedProductsScope() : previous_(share_products) { share_products = true; }
SharedProductsScope::~SharedProductsScope() { share_products = previous_; }

std::size_t detail::products_read_in_place() { return stacked_in_place_count; }
std::size_t detail::products_started_early() { return started_early_count; }

std::vector<Variable> ProductSchedule::around_sweep(
    bool create_graph, const std::function<std::vector<Variable>()>& sweep) {
    ++sweep_;
    struct ForgetCopied {  // in-place records last for one sweep
        std::vector<Copied>& copied;
        ~ForgetCopied() { copied.clear(); }
    } forget{copied_};
    if (!share_products || create_graph || early_) return sweep();
    early_ = std::make_unique<EarlyProducts>();
    struct Done {  // waits for the parts, however the sweep ends
        std::unique_ptr<EarlyProducts>& early;
        ~Done() { early.reset(); }
    } done{early_};
    return tbb::this_task_arena::isolate([&] { return sweep(); });
}

bool ProductSchedule::defer(Backward& bw, const Variable& target, PendingProducts& pending,
                            std::size_t key, const Variable& x, const Variable& y) {
    const bool deferrable = !bw.create_graph_ && !anomaly_enabled() && x.dim() == 2 &&
                            y.dim() == 2 && x.shape()[0] == y.shape()[0] &&
                            target.shape() == Shape{x.shape()[1], y.shape()[1]} &&
                            x.dtype() == target.dtype() && y.dtype() == target.dtype();
    if (!deferrable) return false;
    pending.items.emplace_back(x.value(), y.value());
    if (early_) {
        pending.has_parts = true;
        start_early(pending, key, x.shape()[0]);
    }
    return true;
}

Variable ProductSchedule::collect(PendingProducts& pending, std::size_t key, Variable g) {
    if (pending.has_parts) {
        g = add_started(key, std::move(g));
        pending.has_parts = false;
    }
    if (!pending.items.empty()) {
        g = detail::accumulate(std::move(g), sum_of(pending.items), false);
        pending.items.clear();
    }
    return g;
}

namespace {
// The x's of the products read in place, when each lies in one joined array (copied whole
// into it, copied_into, or written there as a destination) and together they fill one block
// of it: consecutive rows of M columns, `stride` elements apart (M for a range; more for
// columns of a wider array: a GRU's r,z columns of its projection's gradient). That block as
// a [ΣK, M] view, with `products` reordered to follow it. Undefined otherwise.
template <class Copied>
Tensor stacked_in_place(Products& products, const std::vector<Copied>& copied) {
    if (products.size() < 2 || copied.empty()) return {};
    std::vector<std::pair<std::size_t, std::size_t>> at;  // (offset in joined, product)
    const Tensor* joined = nullptr;
    const std::size_t cols = products[0].first.shape()[1];
    std::size_t stride = 0;  // of the rows, the same for every x of more than one row
    for (std::size_t k = 0; k < products.size(); ++k) {
        const Tensor& x = products[k].first;
        // a gradient written straight into a joined array (a destination), or copied there
        auto c = std::find_if(copied.rbegin(), copied.rend(), [&](const Copied& c) {
            return x.is_view() ? c.joined.shares_storage_with(x) : c.whole.shares_storage_with(x);
        });
        if (c == copied.rend() || (joined && !c->joined.shares_storage_with(*joined))) return {};
        std::size_t offset = c->offset;
        std::size_t x_stride = cols;
        if (x.is_view()) {
            const auto [o, s] = dispatch(x.dtype(), [&]<class T>() {
                const auto r = x.rows<T>();
                return std::pair<std::ptrdiff_t, std::size_t>(
                    r.data - c->joined.template rows<T>().data, r.contiguous() ? cols : r.stride);
            });
            if (o < 0) return {};
            offset = static_cast<std::size_t>(o);
            x_stride = s;
        }
        if (x.shape()[0] > 1) {
            if (stride != 0 && x_stride != stride) return {};
            stride = x_stride;
        }
        joined = &c->joined;
        at.emplace_back(offset, k);
    }
    if (stride == 0) stride = cols;
    std::sort(at.begin(), at.end());
    std::size_t rows = 0, end = at.front().first;
    for (const auto& [offset, k] : at) {
        if (offset != end) return {};  // a gap or an overlap
        end += products[k].first.shape()[0] * stride;
        rows += products[k].first.shape()[0];
    }
    Products ordered;
    for (const auto& [offset, k] : at) ordered.push_back(std::move(products[k]));
    products = std::move(ordered);
    ++stacked_in_place_count;
    if (stride == cols)
        return Tensor::view(*joined, {rows, cols}, at.front().first, 1, rows * cols, rows * cols);
    return Tensor::view(*joined, {rows, cols}, at.front().first, rows, cols, stride);
}
}  // namespace

Variable ProductSchedule::sum_of(Products& products) {
    Tensor xs = stacked_in_place(products, copied_);  // reorders products to follow xs
    return Variable(sum_of_products(products, std::move(xs)));
}

void ProductSchedule::start_early(PendingProducts& pending, std::size_t key, std::size_t rows) {
    EarlyProducts& early = *early_;
    std::size_t& waiting = early.rows[key];
    if ((waiting += rows) < early_product_rows) return;
    waiting = 0;
    Products part = std::move(pending.items);
    pending.items.clear();
    Tensor xs = stacked_in_place(part, copied_);  // here: copied_ grows as the sweep goes on
    Tensor& sum = early.started.emplace_back(EarlyProducts::Part{key, Tensor()}).sum;
    ++started_early_count;
    early.group.run([part = std::move(part), xs = std::move(xs), &sum] {
        SharedProductsScope share;  // cut into the same blocks on whichever thread
        sum = sum_of_products(part, xs);
    });
}

Variable ProductSchedule::add_started(std::size_t key, Variable g) {
    if (!early_ || !early_->rows.contains(key)) return g;
    early_->group.wait();
    for (EarlyProducts::Part& part : early_->started) {
        if (part.key != key || part.added) continue;
        g = detail::accumulate(std::move(g), Variable(std::move(part.sum)), false);
        part.added = true;
    }
    return g;
}

// ---- gradient destinations and in-place records

GradientDestination ProductSchedule::destination_for(Backward& bw, const Variable& wanted) {
    if (bw.create_graph_ || !wanted.requires_grad()) return {};
    Tape& tape = bw.tape_;
    const Variable* in = &wanted;
    for (int hops = 0; hops < 16; ++hops) {
        const detail::VarImpl* v = in->impl();
        if (!v || !v->requires_grad || v->tape != &tape || v->generation != tape.generation_)
            return {};
        const Tape::Entry& e = tape.entries_[v->index];
        // a gradient already there (or still to come from deferred products) is added to
        if (!e.backward || tape.grad_of(*v).defined() || !e.pending.empty()) return {};
        const auto& destinations = tape.products_->destinations_;
        if (auto it = destinations.find(destination_key(*v)); it != destinations.end()) {
            GradientDestination d = it->second(bw);  // may look up others, registers none
            if (!d.defined() || d.view.shape() != wanted.shape() ||
                d.view.dtype() != wanted.dtype())
                return {};
            return d;
        }
        if (e.passes_to < 0) return {};
        in = &e.inputs[static_cast<std::size_t>(e.passes_to)];
    }
    return {};
}

GradientDestination ProductSchedule::destination_of_input(Backward& bw, const Variable& result,
                                                          std::size_t i) {
    Tape& tape = bw.tape_;
    const detail::VarImpl* v = result.impl();
    if (!v || v->tape != &tape || v->generation != tape.generation_) return {};
    const Tape::Entry& e = tape.entries_[v->index];
    if (!e.backward || i >= e.inputs.size()) return {};
    const Variable input = e.inputs[i];  // a copy: a DestinationFn may look further
    return destination_for(bw, input);
}

void ProductSchedule::record_copy(Backward& bw, const Tensor& whole, const Tensor& joined,
                                  std::size_t offset) {
    if (!bw.create_graph_) bw.tape_.products_->copied_.push_back({whole, joined, offset});
}

std::uint64_t ProductSchedule::sweep_of(const Backward& bw) { return bw.tape_.products_->sweep_; }

void ProductSchedule::set_destination(const Variable& v, DestinationFn fn) {
    const auto* impl = v.impl();
    if (!impl || !impl->tape || impl->tape != &current_tape()) return;
    Tape& tape = *impl->tape;
    if (impl->generation != tape.generation_) return;
    tape.products_->destinations_[destination_key(*impl)] = std::move(fn);
}

GradientDestination destination(Backward& bw, std::size_t i) {
    return ProductSchedule::destination_for(bw, bw.input(i));
}

GradientDestination destination_of_input(Backward& bw, const Variable& result, std::size_t i) {
    return ProductSchedule::destination_of_input(bw, result, i);
}

void copied_into(Backward& bw, const Tensor& whole, const Tensor& joined, std::size_t offset) {
    // Only gradients someone else still holds (a deferred product) are worth finding again;
    // keeping a record holds the gradient until the sweep ends.
    if (whole.is_view() || whole.unique() || joined.is_view()) return;
    ProductSchedule::record_copy(bw, whole, joined, offset);
}

void writes_into(Backward& bw, const Tensor& joined) {
    if (!joined.is_view()) ProductSchedule::record_copy(bw, joined, joined, 0);
}

std::uint64_t sweep_number(const Backward& bw) { return ProductSchedule::sweep_of(bw); }

void set_gradient_destination(const Variable& v, DestinationFn fn) {
    ProductSchedule::set_destination(v, std::move(fn));
}

}  // namespace tapegrad
