// The packed float32 kernel (kernels/packed_gemm.hpp) and WeightPackScope: products, gradients and
// second-order gradients agree with plain BLAS, a write to a packed weight is seen, and the
// recurrent driver packs each recurrent weight once per sequence.
#include <doctest/doctest.h>

#include <cmath>

#include <tapegrad/core/counters.hpp>
#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

namespace {

// max |a - b| / (1 + max |b|), so float32 sums over a few hundred terms compare at ~1e-6
double relative_diff(const Tensor& a, const Tensor& b) {
    REQUIRE(a.shape() == b.shape());
    double largest = 0;
    for (double v : b.to_vector()) largest = std::max(largest, std::abs(v));
    return max_abs_diff(a, b) / (1 + largest);
}

// Runs f inside a WeightPackScope and outside one: checks that packing happened exactly
// `packings` times inside and never outside, and that each tensor f returns agrees.
template <class F>
void check_packed_agrees(F f, std::size_t packings) {
    const std::size_t before = detail::weights_packed();
    std::vector<Tensor> packed;
    {
        WeightPackScope scope;
        packed = f();
    }
    CHECK(detail::weights_packed() - before == packings);
    const std::size_t middle = detail::weights_packed();
    const std::vector<Tensor> blas = f();
    CHECK(detail::weights_packed() == middle);  // nothing packed outside a scope
    REQUIRE(packed.size() == blas.size());
    for (std::size_t i = 0; i < packed.size(); ++i) {
        CAPTURE(i);
        CHECK(relative_diff(packed[i], blas[i]) < 1e-5);
    }
}

// Results of the packed kernel against the kernel off (BLAS) and against float64, one by one.
void check_agree(const std::vector<Tensor>& packed, const std::vector<Tensor>& blas,
                 const std::vector<Tensor>& reference) {
    REQUIRE(packed.size() == blas.size());
    REQUIRE(packed.size() == reference.size());
    for (std::size_t i = 0; i < packed.size(); ++i) {
        CAPTURE(i);
        CHECK(relative_diff(packed[i], blas[i]) < 1e-5);
        CHECK(relative_diff(packed[i], reference[i]) < 1e-5);
    }
}

// A one-layer float32 RNN, LSTM or GRU (kind "rnn", "lstm", "gru").
std::shared_ptr<Recurrent> make_layer(const std::string& kind, std::size_t I, std::size_t H,
                                      Generator& g) {
    if (kind == "rnn") return std::make_shared<RNN>(I, H, RecurrentOptions{}, g);
    if (kind == "lstm") return std::make_shared<LSTM>(I, H, RecurrentOptions{}, g);
    REQUIRE(kind == "gru");
    return std::make_shared<GRU>(I, H, RecurrentOptions{}, g);
}

}  // namespace

TEST_CASE("packed gemm: the kernel matches a double-precision product on ragged shapes") {
    if (!packed_gemm::available()) {
        MESSAGE(
            "no AVX2 + FMA here, TAPEGRAD_ISA=generic or TAPEGRAD_PACKED_GEMM=0: the packed kernel "
            "is not used");
        return;
    }
    Generator g(3);
    for (std::size_t m : {1, 7, 8, 13, 96})
        for (std::size_t k : {1, 5, 256, 300, 600})
            for (std::size_t n : {1, 17, 48, 50, 64, 97})
                for (bool transposed : {false, true})
                    for (bool accumulate : {false, true}) {
                        CAPTURE(m);
                        CAPTURE(k);
                        CAPTURE(n);
                        CAPTURE(transposed);
                        CAPTURE(accumulate);
                        const Tensor a = g.normal({m, k}, 0, 1, float32);
                        // B stored as [k, n], or as [n, k] when read transposed
                        const Tensor b =
                            g.normal(transposed ? Shape{n, k} : Shape{k, n}, 0, 1, float32);
                        Tensor c = g.normal({m, n}, 0, 1, float32);
                        const Tensor c0 = c.clone();
                        const packed_gemm::PackedMatrix packed(b.xt<float>().data(), k, n,
                                                               transposed ? k : n, transposed);
                        CHECK(packed.rows() == k);
                        CHECK(packed.cols() == n);
                        // accumulate: c += a B in place; otherwise c = a B
                        float* out = c.mutable_xt<float>().data();
                        packed.multiply(m, a.xt<float>().data(), k, out, accumulate ? out : nullptr,
                                        n);
                        double worst = 0;
                        for (std::size_t i = 0; i < m; ++i)
                            for (std::size_t j = 0; j < n; ++j) {
                                double want = accumulate ? c0.flat(i * n + j) : 0.0;
                                for (std::size_t p = 0; p < k; ++p)
                                    want += a.flat(i * k + p) *
                                            b.flat(transposed ? j * k + p : p * n + j);
                                worst = std::max(worst, std::abs(c.flat(i * n + j) - want) /
                                                            (1 + std::abs(want)));
                            }
                        CHECK(worst < 1e-5 * std::sqrt(static_cast<double>(k)));
                    }
}

TEST_CASE("packed gemm: a matrix keeps the path it was packed for when the cap changes") {
    if (cpu_isa() < Isa::avx512 || !packed_gemm::available()) {
        MESSAGE("one path only here: nothing to switch between");
        return;
    }
    struct RestoreCap {
        ~RestoreCap() { set_isa_cap(switches().isa_cap); }
    } restore;
    Generator g(9);
    const std::size_t m = 13, k = 70, n = 50;  // ragged for both blockings (8 x 48, 6 x 16)
    const Tensor a = g.normal({m, k}, 0, 1, float32), b = g.normal({k, n}, 0, 1, float32);
    auto product = [&](const packed_gemm::PackedMatrix& packed) {
        Tensor c = Tensor::zeros({m, n}, float32);
        packed.multiply(m, a.xt<float>().data(), k, c.mutable_xt<float>().data());
        return c;
    };
    set_isa_cap(Isa::avx512);
    const packed_gemm::PackedMatrix wide(b.xt<float>().data(), k, n, n, false);
    const Tensor before = product(wide);
    set_isa_cap(Isa::avx2);
    // packed for AVX-512, so multiplied with the AVX-512 kernel still: the same bits
    CHECK(max_abs_diff(product(wide), before) == 0);
    const packed_gemm::PackedMatrix narrow(b.xt<float>().data(), k, n, n, false);
    const Tensor avx2 = product(narrow);
    set_isa_cap(Isa::avx512);
    CHECK(max_abs_diff(product(narrow), avx2) == 0);
    // the two paths sum in the same order per element, but may round differently: close
    CHECK(relative_diff(avx2, before) < 1e-5);
}

TEST_CASE("packed gemm: atᵀ B with a read as it lies matches a double-precision product") {
    if (!packed_gemm::available()) return;
    Generator g(5);
    for (std::size_t m : {1, 9, 128, 200})
        for (std::size_t k : {0, 3, 256, 700})
            for (std::size_t n : {1, 32, 50, 128}) {
                CAPTURE(m);
                CAPTURE(k);
                CAPTURE(n);
                const Tensor at = g.normal({k, m}, 0, 1, float32),
                             b = g.normal({k, n}, 0, 1, float32);
                Tensor c = Tensor::full({m, n}, 1e30, float32);  // overwritten, never read
                packed_gemm::PackedMatrix(b.xt<float>().data(), k, n, n, false)
                    .multiply_transposed(m, at.xt<float>().data(), m, c.mutable_xt<float>().data());
                double worst = 0;
                for (std::size_t i = 0; i < m; ++i)
                    for (std::size_t j = 0; j < n; ++j) {
                        double want = 0;
                        for (std::size_t p = 0; p < k; ++p)
                            want += at.flat(p * m + i) * b.flat(p * n + j);
                        worst = std::max(worst,
                                         std::abs(c.flat(i * n + j) - want) / (1 + std::abs(want)));
                    }
                CHECK(worst < 1e-5 * std::sqrt(static_cast<double>(k + 1)));
            }
}

TEST_CASE("packed gemm: B packed from row blocks is B packed from the stacked rows") {
    if (!packed_gemm::available()) return;
    Generator g(7);
    const std::size_t n = 70, m = 20;
    const std::vector<std::size_t> block_rows{3, 0, 32, 300};
    std::vector<Tensor> blocks;
    std::vector<packed_gemm::RowBlock> views;
    std::vector<float> stacked_rows;
    for (std::size_t rows : block_rows) {
        blocks.push_back(g.normal({rows, n}, 0, 1, float32));
        views.push_back({blocks.back().xt<float>().data(), rows});
        stacked_rows.insert(stacked_rows.end(), blocks.back().xt<float>().begin(),
                            blocks.back().xt<float>().end());
    }
    const std::size_t k = stacked_rows.size() / n;
    const packed_gemm::PackedMatrix from_blocks(views, n),
        from_stack(stacked_rows.data(), k, n, n, false);
    CHECK(from_blocks.rows() == k);
    const Tensor at = g.normal({k, m}, 0, 1, float32);
    Tensor c1 = Tensor::empty({m, n}, float32), c2 = Tensor::empty({m, n}, float32);
    from_blocks.multiply_transposed(m, at.xt<float>().data(), m, c1.mutable_xt<float>().data());
    from_stack.multiply_transposed(m, at.xt<float>().data(), m, c2.mutable_xt<float>().data());
    CHECK(max_abs_diff(c1, c2) == 0);
}

TEST_CASE("packed gemm: a weight's deferred gradient products agree with BLAS and with float64") {
    // W used by 7 products: its gradient Σ_t g_tᵀ x_t from 7 x 32 stacked rows. [512, 32] is
    // small enough for the packed kernel; [1024, 64] has as many elements but too many rows,
    // and goes to OpenBLAS. With the kernel off OpenBLAS computes both; float64 is the reference.
    if (!packed_gemm::available()) return;
    for (const auto& [m, n] : {std::pair<std::size_t, std::size_t>{512, 32}, {1024, 64}}) {
        CAPTURE(m);
        Generator g(6);
        const Tensor w0 = g.normal({m, n}, 0, 0.1, float32);
        std::vector<Tensor> xs, cs;
        for (int t = 0; t < 7; ++t) {
            xs.push_back(g.normal({32, n}, 0, 1, float32));
            cs.push_back(g.normal({32, m}, 0, 1, float32));
        }
        auto gradient = [&](DType dtype) {
            Variable w(w0.to(dtype), true);
            Variable loss;
            for (int t = 0; t < 7; ++t) {
                Variable term = sum(matmul(Variable(xs[t].to(dtype)), w, false, true) *
                                    Variable(cs[t].to(dtype)));
                loss = loss.defined() ? loss + term : term;
            }
            return grad(loss, {w})[0].value();
        };
        const Tensor on = gradient(float32), reference = gradient(float64).to(float32);
        packed_gemm::set_enabled(false);
        const Tensor off = gradient(float32);
        packed_gemm::set_enabled(true);
        CHECK(relative_diff(on, off) < 1e-5);
        CHECK(relative_diff(on, reference) < 1e-5);
    }
}

TEST_CASE("packed gemm: an addend row is added to every row, and k = 0 leaves just the addend") {
    if (!packed_gemm::available()) return;
    Generator g(4);
    for (std::size_t k : {0, 3, 700}) {
        CAPTURE(k);
        const std::size_t m = 11, n = 53;
        const Tensor a = g.normal({m, k}, 0, 1, float32), b = g.normal({k, n}, 0, 1, float32);
        const Tensor bias = g.normal({n}, 0, 1, float32);
        Tensor c = Tensor::full({m, n}, 1e30, float32);  // overwritten, never read
        packed_gemm::PackedMatrix(b.xt<float>().data(), k, n, n, false)
            .multiply(m, a.xt<float>().data(), k, c.mutable_xt<float>().data(),
                      bias.xt<float>().data(), 0);
        double worst = 0;
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) {
                double want = bias.flat(j);
                for (std::size_t p = 0; p < k; ++p) want += a.flat(i * k + p) * b.flat(p * n + j);
                worst = std::max(worst, std::abs(c.flat(i * n + j) - want) / (1 + std::abs(want)));
            }
        CHECK(worst < 1e-4);
    }
}

TEST_CASE("packed gemm: matmul and addmm in a WeightPackScope agree with BLAS, gradients too") {
    if (!packed_gemm::available()) return;
    Generator g(5);
    const Variable w(g.normal({200, 70}, 0, 1, float32), true, "w");
    const Variable bias(g.normal({200}, 0, 1, float32), true, "bias");
    const Variable x1(g.normal({9, 70}, 0, 1, float32), true),
        x2(g.normal({3, 4, 70}, 0, 1, float32), true);
    const Variable h(g.normal({9, 200}, 0, 1, float32), true);
    const Variable probe(g.normal({9, 200}, 0, 1, float32));
    auto run = [&] {
        // the same weight three times: x1 wᵀ and (batched) x2 wᵀ share one packing of wᵀ, h w
        // packs w as it is stored
        // c as a bias row, as a full [9, 200] matrix and as a column (copied, then accumulated)
        const Variable a = addmm(bias, x1, w, false, true) * probe, b = matmul(h, w),
                       c = matmul(x2, w, false, true), d = addmm(probe, x1, w, false, true),
                       e = addmm(narrow(probe, 1, 0, 1), x1, w, false, true);
        const Variable loss = sum(a * a) + sum(b * b) + sum(c * c) + sum(d * e);
        auto grads = grad(loss, {w, bias, x1, x2, h});
        std::vector<Tensor> out{loss.value()};
        for (auto& v : grads) out.push_back(v.value());
        return out;
    };
    check_packed_agrees(run, 4);  // (wᵀ, w) for the first product, (w, wᵀ) for h w
}

TEST_CASE("packed gemm: second-order gradients through a packed product agree with BLAS") {
    if (!packed_gemm::available()) return;
    Generator g(6);
    const Variable w(g.normal({40, 30}, 0, 0.3, float32), true),
        x(g.normal({5, 30}, 0, 1, float32), true);
    auto run = [&] {
        const Variable y = tanh(matmul(x, w, false, true));
        const Variable loss = sum(y * y * y);
        const auto first = grad(loss, {x}, {}, {.create_graph = true});
        const auto second = grad(sum(first[0] * first[0]), {w, x});
        return std::vector<Tensor>{first[0].value(), second[0].value(), second[1].value()};
    };
    check_packed_agrees(run, 2);
}

TEST_CASE("packed gemm: a write to a packed weight inside the scope is seen by the next product") {
    if (!packed_gemm::available()) return;
    Generator g(7);
    Variable w(g.normal({64, 32}, 0, 1, float32), true);
    const Variable x(g.normal({4, 32}, 0, 1, float32));
    WeightPackScope scope;
    const Tensor before = matmul(x, w, false, true).value();
    const std::size_t packed = detail::weights_packed();
    CHECK(relative_diff(matmul(x, w, false, true).value(), before) == 0.0);  // reused, same values
    CHECK(detail::weights_packed() == packed);
    w.mutable_value().mutable_xt<float>() *= 2.0f;
    const Tensor after = matmul(x, w, false, true).value();
    CHECK(detail::weights_packed() == packed + 2);  // the new values were packed
    Tensor doubled = before.clone();
    doubled.mutable_xt<float>() *= 2.0f;
    CHECK(relative_diff(after, doubled) < 1e-6);
}

TEST_CASE(
    "packed gemm: without recording only op(b) is packed, its transpose once a graph needs it") {
    if (!packed_gemm::available()) return;
    Generator g(10);
    const Variable w(g.normal({24, 16}, 0, 1, float32), true), x(g.normal({3, 16}, 0, 1, float32));
    WeightPackScope scope;
    const std::size_t start = detail::weights_packed();
    Tensor inference;
    {
        NoGradGuard no_grad;
        inference = matmul(x, w, false, true).value();
    }
    CHECK(detail::weights_packed() == start + 1);
    const Variable y = matmul(x, w, false, true);  // recorded: wᵀ's transpose is added
    CHECK(detail::weights_packed() == start + 2);
    CHECK(relative_diff(y.value(), inference) == 0.0);
    const auto gw = grad(sum(y * y), {w});
    CHECK(detail::weights_packed() == start + 2);
    CHECK(gw[0].defined());
}

TEST_CASE("packed gemm: float64, and many rows with a deep product, stay on BLAS") {
    if (!packed_gemm::available()) return;
    Generator g(8);
    const std::size_t start = detail::weights_packed();
    WeightPackScope scope;
    const std::size_t deep = packed_gemm::one_pass_depth + 1;
    matmul(Variable(g.normal({4, 8}, 0, 1, float64)), Variable(g.normal({8, 8}, 0, 1, float64)));
    matmul(Variable(g.normal({packed_gemm::max_rows + 1, deep}, 0, 1, float32)),
           Variable(g.normal({deep, 8}, 0, 1, float32)));
    CHECK(detail::weights_packed() == start);
    // switched off for the process: BLAS; switched back on: packed again
    const Variable x(g.normal({4, 8}, 0, 1, float32)), w(g.normal({8, 8}, 0, 1, float32));
    packed_gemm::set_enabled(false);
    CHECK_FALSE(packed_gemm::available());
    matmul(x, w);
    CHECK(detail::weights_packed() == start);
    packed_gemm::set_enabled(true);
    matmul(x, w);
    CHECK(detail::weights_packed() == start + 2);
}

TEST_CASE(
    "packed gemm: many rows and a shallow depth are packed for the product alone, scope or not") {
    // A sequence's input projection: [T·B, I] x W_ihᵀ + bias. More than max_rows rows but a
    // depth of at most one_pass_depth: op(b) is packed for this product, inside a scope or
    // not, and so is op(b)ᵀ for the backward's dx = G op(b)ᵀ, as shallow here (100 and 30).
    // Values and gradients agree with BLAS (the kernel off) and with float64.
    if (!packed_gemm::available()) return;
    Generator g(11);
    const std::size_t m = 301, deep = packed_gemm::one_pass_depth;
    const Tensor w0 = g.normal({100, 40}, 0, 0.3, float32), bias0 = g.normal({100}, 0, 1, float32);
    const Tensor x0 = g.normal({m, 40}, 0, 1, float32), probe0 = g.normal({m, 100}, 0, 1, float32);
    const Tensor v0 = g.normal({deep, 30}, 0, 0.1, float32),
                 y0 = g.normal({97, deep}, 0, 1, float32);
    auto run = [&](DType dtype, std::size_t packings) {
        const std::size_t before = detail::weights_packed();
        const Variable w(w0.to(dtype), true), bias(bias0.to(dtype), true), x(x0.to(dtype), true);
        const Variable v(v0.to(dtype), true), y(y0.to(dtype), true);
        const Variable a = addmm(bias, x, w, false, true) * Variable(probe0.to(dtype));
        const Variable b = matmul(y, v);
        CHECK(detail::weights_packed() - before == packings);
        const Variable loss = sum(a * a) + sum(b * b);
        std::vector<Tensor> out{a.value().to(float32), b.value().to(float32)};
        for (const auto& gv : grad(loss, {w, bias, x, v, y})) out.push_back(gv.value().to(float32));
        CHECK(detail::weights_packed() - before == 2 * packings);  // each dx product packs op(b)ᵀ
        return out;
    };
    const std::vector<Tensor> reference = run(float64, 0);
    std::vector<Tensor> packed = run(float32, 2);
    {
        WeightPackScope scope;
        const std::vector<Tensor> in_scope = run(float32, 2);
        for (std::size_t i = 0; i < packed.size(); ++i)
            CHECK(max_abs_diff(in_scope[i], packed[i]) == 0);
    }
    packed_gemm::set_enabled(false);
    const std::vector<Tensor> blas = run(float32, 0);
    packed_gemm::set_enabled(true);
    check_agree(packed, blas, reference);
}

TEST_CASE("packed gemm: layers whose input projection has many rows agree with float64") {
    // T·B = 117 rows: the projection (for the Cho GRU, its two column parts, from slices of
    // W_ih) runs on the packed kernel with the biases added as it stores. Outputs and all
    // gradients of the float32 layer agree with the same layer in float64 and with the kernel off.
    if (!packed_gemm::available()) return;
    for (const char* kind : {"rnn", "lstm", "gru"}) {
        CAPTURE(kind);
        Generator g(12);
        const std::size_t I = 5, H = 20, T = 13, B = 9;
        const std::shared_ptr<Recurrent> layer = make_layer(kind, I, H, g);
        const Tensor x0 = g.normal({T, B, I}, 0, 1, float32);
        auto run = [&](DType dtype) {
            layer->to(dtype);
            const Variable x(x0.to(dtype), true);
            std::vector<Variable> wanted = layer->parameters();
            wanted.push_back(x);
            const Variable out = layer->forward(x).output;
            std::vector<Tensor> result{out.value().to(float32)};
            for (const auto& gv : grad(sum(out * out), wanted))
                result.push_back(gv.value().to(float32));
            return result;
        };
        const std::size_t before = detail::weights_packed();
        const std::vector<Tensor> packed = run(float32);
        CHECK(detail::weights_packed() > before);
        packed_gemm::set_enabled(false);
        const std::vector<Tensor> blas = run(float32);
        packed_gemm::set_enabled(true);
        const std::vector<Tensor> reference = run(float64);
        check_agree(packed, blas, reference);
    }
}

TEST_CASE(
    "packed gemm: the driver packs each recurrent weight once per sequence; results match steps "
    "run alone") {
    if (!packed_gemm::available()) return;
    for (const char* kind : {"rnn", "lstm", "gru"}) {
        CAPTURE(kind);
        Generator g(9);
        const std::size_t I = 6, H = 20, T = 7, B = 5;
        const std::shared_ptr<Recurrent> layer = make_layer(kind, I, H, g);
        const Variable x(g.normal({T, B, I}, 0, 1, float32), true);
        auto params = layer->parameters();
        std::vector<Variable> wanted(params.begin(), params.end());
        wanted.push_back(x);
        const std::size_t before = detail::weights_packed();
        const Variable out = layer->forward(x).output;
        // RNN and LSTM: weight_hh and its transpose; GRU: its two per-sequence slices, each twice
        CHECK(detail::weights_packed() - before == (std::string(kind) == "gru" ? 4 : 2));
        const auto grads = grad(sum(out * out), wanted);

        // the same steps through cell.step outside any scope: BLAS throughout
        Cell& cell = layer->cell(0, 0);
        State state(cell.state_count(), constant(Tensor::zeros({B, H}, float32)));
        Variable total = constant(0.0, float32);
        for (std::size_t t = 0; t < T; ++t) {
            const Variable xt = reshape(narrow(x, 0, static_cast<long>(t), 1), Shape{B, I});
            state = cell.step(cell.projects_input() ? cell.project_input(xt) : xt, state);
            total = total + sum(state[0] * state[0]);
        }
        const auto alone = grad(total, wanted);
        CHECK(detail::weights_packed() - before == (std::string(kind) == "gru" ? 4 : 2));
        for (std::size_t i = 0; i < grads.size(); ++i) {
            CAPTURE(i);
            CHECK(relative_diff(grads[i].value(), alone[i].value()) < 1e-5);
        }
    }
}
