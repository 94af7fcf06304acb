#include "ops/linalg.hpp"

#include <memory>

#include "core/counters.hpp"
#include "core/tape.hpp"
#include "kernels/blas.hpp"
#include "kernels/packed_gemm.hpp"
#include "ops/shape.hpp"
#include "ops/support.hpp"

namespace tapegrad {

namespace {

// A matrix right operand packed for the kernel of kernels/packed_gemm.hpp: op(B) [K, N] for the
// product A op(B), and op(B)ᵀ [N, K] for its backward's G op(B)ᵀ. Empty: BLAS does the product.
struct RhsPacks {
    std::shared_ptr<const packed_gemm::PackedMatrix> rhs, rhs_t;  // rhs_t: none without grad
    explicit operator bool() const { return rhs != nullptr; }
    RhsPacks transposed() const { return {rhs_t, rhs}; }
};

// The packings made inside this thread's WeightPackScopes. Each entry holds the tensor it
// packed, so its storage (and so the address it is found by) stays its own until the scope
// ends: a write to it copies the storage first.
struct PackCache {
    struct Entry {
        Tensor held;
        bool transposed;
        RhsPacks packs;
    };
    int depth = 0;
    std::vector<Entry> entries;
};
thread_local PackCache pack_cache;
thread_local std::size_t packed_count = 0;

std::shared_ptr<const packed_gemm::PackedMatrix> pack(const float* data, std::size_t k,
                                                      std::size_t n, std::size_t ld,
                                                      bool transposed) {
    ++packed_count;
    return std::make_shared<const packed_gemm::PackedMatrix>(data, k, n, ld, transposed);
}

// op(b)'s packings for a product with `rows` rows on the left: found or made inside a
// WeightPackScope, empty outside one or where the packed kernel does not apply. A product
// of many rows and a shallow depth (packed_gemm::one_pass_depth) is packed for itself,
// scope or not: a sequence's input projection, whose packing costs 1/rows of its product.
RhsPacks packs_for(const Variable& b, bool tb, std::size_t rows) {
    if (b.dtype() != float32 || b.dim() != 2 || b.numel() == 0 || !packed_gemm::available())
        return {};
    const Tensor& value = b.value();
    const float* data = value.xt<float>().data();
    const Shape& s = value.shape();
    const std::size_t k = s[tb ? 1 : 0], n = s[tb ? 0 : 1];
    // (op(b)ᵀ is not made here: the backward's dA = G op(b)ᵀ asks for its own packing, which
    // it gets when its depth is shallow too)
    if (rows > packed_gemm::max_rows)
        return k <= packed_gemm::one_pass_depth ? RhsPacks{pack(data, k, n, s[1], tb), {}}
                                                : RhsPacks{};
    if (pack_cache.depth == 0) return {};
    PackCache::Entry* entry = nullptr;
    for (auto& e : pack_cache.entries)
        if (e.transposed == tb && e.held.xt<float>().data() == data && e.held.shape() == s)
            entry = &e;
    if (!entry) {
        pack_cache.entries.push_back({value, tb, {pack(data, k, n, s[1], tb), {}}});
        entry = &pack_cache.entries.back();
    }
    // op(b)ᵀ only serves a backward: not made while nothing is recorded (inference)
    if (!entry->packs.rhs_t && grad_enabled()) entry->packs.rhs_t = pack(data, n, k, s[1], !tb);
    return entry->packs;
}

Variable matmul_impl(const Variable& a, const Variable& b, bool ta, bool tb, RhsPacks packs,
                     const Loc& loc);

// The product's part of a backward rule: C = op(A) op(B) per batch, with A and B inputs
// `ia` and `ib` of the entry. d op(A) = G op(B)ᵀ, d op(B) = op(A)ᵀ G; bw.add sums the batches
// an operand was broadcast over. `packs` are op(B)'s packings when the forward used them.
void matmul_backward(Backward& bw, std::size_t ia, std::size_t ib, bool ta, bool tb,
                     const RhsPacks& packs) {
    const Variable& g = bw.grad_out();
    const Variable &A = bw.input(ia), &B = bw.input(ib);
    if (bw.needs(ia))
        bw.add(ia, ta ? matmul(B, g, tb, true)
                      : matmul_impl(g, B, false, !tb, packs.transposed(), Loc::current()));
    if (!bw.needs(ib)) return;
    if (B.dim() > 2 || ta) {
        bw.add(ib, tb ? matmul(g, A, true, ta) : matmul(A, g, !ta, false));
        return;
    }
    // B a matrix, A not transposed: dB = Aᵀ G (or Gᵀ A for op(B) = Bᵀ), with A's batches
    // folded into rows; add_product lets the sweep sum a weight's products as one gemm
    const Variable af =
        A.dim() == 2 ? A : reshape(A, std::vector<long>{-1, static_cast<long>(A.shape().back())});
    const Variable gf =
        g.dim() == 2 ? g : reshape(g, std::vector<long>{-1, static_cast<long>(g.shape().back())});
    if (tb) bw.add_product(ib, gf, af);
    else bw.add_product(ib, af, gf);
}

// Index (in matrices) of batch i of the broadcast batch shape `batch` inside an operand whose
// own batch shape is `own` (aligned at the right; its axes of size 1 and missing axes repeat).
std::size_t batch_index(std::size_t i, const Shape& batch, const Shape& own) {
    const std::size_t lead = batch.size() - own.size();
    std::size_t index = 0, stride = 1;
    for (std::size_t d = batch.size(); d-- > lead;) {
        const std::size_t coord = i % batch[d];
        i /= batch[d];
        if (own[d - lead] != 1) index += coord * stride;
        stride *= own[d - lead];
    }
    return index;
}

// [m, k] x [k, n] of op(a) op(b), the last two axes of each; the inner sizes must agree.
struct ProductDims {
    std::size_t m, k, n;
};
ProductDims product_dims(const char* op, const Shape& as, bool ta, const Shape& bs, bool tb,
                         const Loc& loc) {
    const std::size_t ra = as.size(), rb = bs.size();
    const std::size_t m = as[ra - (ta ? 1 : 2)], k = as[ra - (ta ? 2 : 1)];
    const std::size_t k2 = bs[rb - (tb ? 1 : 2)], n = bs[rb - (tb ? 2 : 1)];
    if (k != k2)
        fail<ShapeError>(
            op,
            fmt::format("{}{} x {}{}: inner dimensions {} and {} differ", to_string(as),
                        ta ? "ᵀ" : "", to_string(bs), tb ? "ᵀ" : "", k, k2),
            loc);
    return {m, k, n};
}

Variable matmul_impl(const Variable& a, const Variable& b, bool ta, bool tb, RhsPacks packs,
                     const Loc& loc) {
    ops::check_binary("matmul", a, b, loc);
    const Shape &as = a.shape(), &bs = b.shape();
    if (a.dim() < 2 || b.dim() < 2)
        fail<ShapeError>(
            "matmul",
            fmt::format("{} x {}: both operands need rank >= 2", to_string(as), to_string(bs)),
            loc);
    const auto [m, k, n] = product_dims("matmul", as, ta, bs, tb, loc);
    const Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
    // the batch axes broadcast as NumPy's, aligned at the right
    Shape batch(std::max(a_batch.size(), b_batch.size()));
    auto size_at = [n = batch.size()](const Shape& s, std::size_t d) {
        return d + s.size() < n ? 1 : s[d + s.size() - n];
    };
    for (std::size_t d = 0; d < batch.size(); ++d) {
        const std::size_t da = size_at(a_batch, d), db = size_at(b_batch, d);
        if (da != db && da != 1 && db != 1)
            fail<ShapeError>(
                "matmul",
                fmt::format("{} x {}: batch dimensions {} and {} cannot be "
                            "broadcast",
                            to_string(as), to_string(bs), to_string(a_batch), to_string(b_batch)),
                loc);
        batch[d] = da == 1 ? db : da;
    }
    Shape out_shape = batch;
    out_shape.push_back(m);
    out_shape.push_back(n);
    Tensor out = Tensor::empty(out_shape, a.dtype());
    dispatch(a.dtype(), [&]<class T>() {
        auto& c = out.mutable_xt<T>();
        if (k == 0) c.fill(T(0));
        if (m == 0 || n == 0 || k == 0) return;
        const T* pa = a.value().data<T>();
        const T* pb = b.value().data<T>();
        const std::size_t batches = numel(batch);
        if (numel(b_batch) == 1 && !ta) {  // a's batches stacked are one [batches*M, K] matrix
            if constexpr (std::is_same_v<T, float>) {
                if (!packs && b.dim() == 2) packs = packs_for(b, tb, batches * m);
                if (packs) {
                    packs.rhs->multiply(batches * m, pa, as.back(), c.data());
                    return;
                }
            }
            gemm(false, tb, batches * m, n, k, pa, as.back(), pb, bs.back(), c.data());
        } else {
            for (std::size_t i = 0; i < batches; ++i)
                gemm(ta, tb, m, n, k, pa + batch_index(i, batch, a_batch) * m * k, as.back(),
                     pb + batch_index(i, batch, b_batch) * k * n, bs.back(), c.data() + i * m * n);
        }
    });
    return record(
        "matmul", std::move(out), {a, b}, {.inputs = input_mask(0, 1), .result = false},
        [ta, tb, packs](Backward& bw) { matmul_backward(bw, 0, 1, ta, tb, packs); }, loc);
}

}  // namespace

WeightPackScope::WeightPackScope() { ++pack_cache.depth; }

WeightPackScope::~WeightPackScope() {
    if (--pack_cache.depth == 0) pack_cache.entries.clear();
}

std::size_t detail::weights_packed() { return packed_count; }

Variable matmul(const Variable& a, const Variable& b, const Loc& loc) {
    return matmul_impl(a, b, false, false, {}, loc);
}

Variable matmul(const Variable& a, const Variable& b, bool ta, bool tb, const Loc& loc) {
    return matmul_impl(a, b, ta, tb, {}, loc);
}

Variable addmm(const Variable& c, const Variable& a, const Variable& b, bool ta, bool tb,
               const Loc& loc) {
    ops::check_binary("addmm", a, b, loc);
    ops::check_binary("addmm", c, a, loc);
    const Shape &as = a.shape(), &bs = b.shape(), &cs = c.shape();
    if (a.dim() != 2 || b.dim() != 2)
        fail<ShapeError>(
            "addmm",
            fmt::format("{} x {}: both operands must be matrices", to_string(as), to_string(bs)),
            loc);
    const auto [m, k, n] = product_dims("addmm", as, ta, bs, tb, loc);
    const bool fits = c.dim() <= 2 && (c.dim() < 1 || cs.back() == n || cs.back() == 1) &&
                      (c.dim() < 2 || cs[0] == m || cs[0] == 1);
    if (!fits)
        fail<ShapeError>(
            "addmm",
            fmt::format("c {} does not broadcast to the product's [{},{}]", to_string(cs), m, n),
            loc);
    const RhsPacks packs = ta ? RhsPacks{} : packs_for(b, tb, m);
    Tensor result = Tensor::empty({m, n}, a.dtype());
    dispatch(a.dtype(), [&]<class T>() {
        T* out = result.mutable_xt<T>().data();
        const std::size_t c_rows = c.dim() == 2 ? cs[0] : 1, c_cols = c.dim() >= 1 ? cs.back() : 1;
        // c's rows are read in place, a view's too when its runs are c's rows
        const auto c_runs = c.value().rows<T>();
        const bool in_place =
            c_runs.contiguous() || (c_runs.rows == c_rows && c_runs.cols == c_cols);
        const T* cv = in_place ? c_runs.data : c.value().xt<T>().data();
        const std::size_t c_stride = c_rows == 1                        ? 0
                                     : in_place && !c_runs.contiguous() ? c_runs.stride
                                                                        : c_cols;
        if constexpr (std::is_same_v<T, float>) {
            // the packed kernel adds c's rows as it stores: no copy of c first
            if (packs && c_cols == n) {
                packs.rhs->multiply(m, a.value().data<T>(), as.back(), out, cv, c_stride);
                return;
            }
        }
        // c broadcast into the result with plain copies: c's rows (1 or M) by c's columns (1 or N)
        for (std::size_t i = 0; i < m; ++i) {
            const T* src = cv + i * c_stride;
            if (c_cols == n) std::copy_n(src, n, out + i * n);
            else std::fill_n(out + i * n, n, src[0]);
        }
        if constexpr (std::is_same_v<T, float>) {
            if (packs) {
                packs.rhs->multiply(m, a.value().data<T>(), as.back(), out, out, n);
                return;
            }
        }
        if (m > 0 && n > 0 && k > 0)
            gemm(ta, tb, m, n, k, a.value().data<T>(), as.back(), b.value().data<T>(), bs.back(),
                 out, T(1));
    });
    // an addend of the result's shape gets G itself: its gradient passes through unchanged
    const Reads reads{.inputs = input_mask(1, 2), .result = false, .passes_gradient_to = 0};
    return record(
        "addmm", std::move(result), {c, a, b}, reads,
        [ta, tb, packs](Backward& bw) {
            bw.add(0, bw.grad_out());  // d c = G, summed over the broadcast axes by add
            matmul_backward(bw, 1, 2, ta, tb, packs);
        },
        loc);
}

Variable linear(const Variable& x, const Variable& weight, const Variable& bias, const Loc& loc) {
    ops::require_defined("linear", x, loc);
    ops::require_defined("linear", weight, loc);
    if (weight.dim() != 2 || x.dim() < 1 || x.shape().back() != weight.shape()[1])
        fail<ShapeError>("linear",
                         fmt::format("input {} and weight {}: the weight must be "
                                     "[out, in] with in = the input's last axis",
                                     to_string(x.shape()), to_string(weight.shape())),
                         loc);
    if (x.dim() != 2) {  // [..., in] as rows, and back
        Shape out_shape = x.shape();
        out_shape.back() = weight.shape()[0];
        const std::size_t n = numel(Shape(x.shape().begin(), x.shape().end() - 1));
        const Variable rows = reshape(x, Shape{n, x.shape().back()}, loc);  // in = 0 too
        return reshape(linear(rows, weight, bias, loc), out_shape, loc);
    }
    if (!bias.defined()) return matmul(x, weight, false, true, loc);
    return addmm(bias, x, weight, false, true, loc);
}

}  // namespace tapegrad
