// init:: (torch.nn.init on a parameter or a block of it) and Module::parameter.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <tapegrad/layers/init.hpp>
#include <tapegrad/tapegrad.hpp>

#include "test_support.hpp"

using namespace tapegrad;
using tapegrad::test::message_of;

namespace {

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

// A parameter (a leaf requiring grad) of random values in [-1, 1).
Variable param(const Shape& shape, DType dt, std::uint64_t seed = 7) {
    Generator g(seed);
    return Variable(g.uniform(shape, -1, 1, dt), true);
}

// The bits of element i, as stored (float32 elements as their 4 bytes).
std::uint64_t bits(const Tensor& t, std::size_t i) {
    std::uint64_t b = 0;
    dispatch(t.dtype(), [&]<class T>() {
        const T v = t.xt<T>().data()[i];
        std::memcpy(&b, &v, sizeof(T));
    });
    return b;
}

// Element (r, c) of a 2-d tensor.
double at(const Tensor& t, std::size_t r, std::size_t c) { return t.flat(r * t.shape()[1] + c); }

// Checks, for a 2-d parameter, that elements in rows [r0, r1) x cols [c0, c1) satisfy `in`, and
// that every other element is bit for bit the one of `before`.
template <class F>
void check_block(const Tensor& after, const Tensor& before, std::size_t r0, std::size_t r1,
                 std::size_t c0, std::size_t c1, F&& in) {
    REQUIRE(after.shape() == before.shape());
    const std::size_t R = after.shape()[0], C = after.shape()[1];
    std::size_t inside = 0, unchanged = 0;
    for (std::size_t r = 0; r < R; ++r)
        for (std::size_t c = 0; c < C; ++c) {
            const std::size_t i = r * C + c;
            if (r >= r0 && r < r1 && c >= c0 && c < c1) {
                inside += in(after.flat(i)) ? 1 : 0;
            } else {
                unchanged += bits(after, i) == bits(before, i) ? 1 : 0;
            }
        }
    CHECK(inside == (r1 - r0) * (c1 - c0));
    CHECK(unchanged == R * C - (r1 - r0) * (c1 - c0));
}

// max |G - scale I| for G = W^T W (columns) or W W^T (rows) of a 2-d [rows, cols] matrix.
double gram_error(const std::vector<double>& w, std::size_t rows, std::size_t cols, bool of_columns,
                  double scale = 1.0) {
    const std::size_t n = of_columns ? cols : rows, len = of_columns ? rows : cols;
    auto el = [&](std::size_t vec, std::size_t k) {
        return of_columns ? w[k * cols + vec] : w[vec * cols + k];
    };
    double worst = 0;
    for (std::size_t a = 0; a < n; ++a)
        for (std::size_t b = 0; b < n; ++b) {
            double dot = 0;
            for (std::size_t k = 0; k < len; ++k) dot += el(a, k) * el(b, k);
            worst = std::max(worst, std::abs(dot - (a == b ? scale : 0.0)));
        }
    return worst;
}

// The elements of rows [r0, r1) and cols [c0, c1) of a 2-d tensor, row-major.
std::vector<double> block_values(const Tensor& t, std::size_t r0, std::size_t r1, std::size_t c0,
                                 std::size_t c1) {
    std::vector<double> out;
    for (std::size_t r = r0; r < r1; ++r)
        for (std::size_t c = c0; c < c1; ++c) out.push_back(at(t, r, c));
    return out;
}

// A layer that registers one LSTMCell as PyTorch's LSTM names its first layer:
// weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0 (independent of the LSTM layer's options).
struct OneLayerLSTM : Module {
    std::shared_ptr<LSTMCell> cell;
    OneLayerLSTM(std::size_t in, std::size_t hidden, Generator& g, DType dt = float64)
        : Module("OneLayerLSTM") {
        cell = register_flat("_l0", std::make_shared<LSTMCell>(in, hidden, g, dt));
    }
};

// A module holding the layer as "rnn" and a parameter of its own.
struct Net : Module {
    std::shared_ptr<OneLayerLSTM> rnn;
    Variable scale;
    Net(Generator& g) : Module("Net") {
        rnn = register_module("rnn", std::make_shared<OneLayerLSTM>(3, 4, g));
        scale = register_parameter("scale", Tensor::ones({4}, float64));
    }
};

struct Many : Module {
    explicit Many(std::size_t n) : Module("Many") {
        for (std::size_t i = 0; i < n; ++i)
            register_parameter("p" + std::to_string(i), Tensor::zeros({1}, float32));
    }
};

struct Empty : Module {
    Empty() : Module("Empty") {}
};

}  // namespace

TEST_CASE("init: constant_, zeros_ and ones_ change exactly a row block or a column block") {
    for (DType dt : {float32, float64}) {
        CAPTURE(name(dt));
        const Variable p = param({6, 5}, dt);
        const Tensor before = p.value().clone();
        const Tensor shared = p.value();  // shares the storage: must keep the old values

        init::constant_(p, 0.25, init::rows(2, 4));
        check_block(p.value(), before, 2, 4, 0, 5, [](double v) { return v == 0.25; });
        CHECK(max_abs_diff(shared, before) == 0.0);
        CHECK(p.dtype() == dt);

        const Tensor before_cols = p.value().clone();
        init::zeros_(p, init::cols(1, 3));
        check_block(p.value(), before_cols, 0, 6, 1, 3, [](double v) { return v == 0.0; });

        const Tensor before_ones = p.value().clone();
        init::ones_(p, init::Part{-1, -2, std::nullopt});  // the last two columns
        check_block(p.value(), before_ones, 0, 6, 3, 5, [](double v) { return v == 1.0; });

        const Tensor before_neg_rows = p.value().clone();
        init::constant_(p, -3.5, init::rows(-2, -1));  // row 4 only
        check_block(p.value(), before_neg_rows, 4, 5, 0, 5, [](double v) { return v == -3.5; });

        const Tensor before_empty = p.value().clone();
        init::constant_(p, 9.0, init::rows(3, 3));  // an empty block: nothing changes
        check_block(p.value(), before_empty, 0, 0, 0, 0, [](double) { return true; });

        init::constant_(p, 2.0);  // the whole parameter
        for (double v : p.value().to_vector()) CHECK(v == 2.0);
    }
    // A 3-d parameter, a block along its middle axis
    const Variable q = param({2, 4, 3}, float64);
    const Tensor before = q.value().clone();
    init::ones_(q, init::Part{.axis = 1, .start = 1, .stop = 3});
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 4; ++j)
            for (std::size_t k = 0; k < 3; ++k) {
                const std::size_t f = (i * 4 + j) * 3 + k;
                if (j >= 1 && j < 3) {
                    CHECK(q.value().flat(f) == 1.0);
                } else {
                    CHECK(bits(q.value(), f) == bits(before, f));
                }
            }
    // A 0-d parameter as a whole
    const Variable s(Tensor::scalar(4.0, float32), true);
    init::zeros_(s);
    CHECK(s.item() == 0.0);
}

TEST_CASE("init: uniform_ draws from [low, high) into the block only") {
    for (DType dt : {float32, float64}) {
        CAPTURE(name(dt));
        Generator gen(1);
        const Variable p = param({100, 100}, dt);
        init::uniform_(p, 2.0, 5.0, gen);
        const auto v = p.value().to_vector();
        double lo = 1e9, hi = -1e9, mean = 0;
        for (double x : v) lo = std::min(lo, x), hi = std::max(hi, x), mean += x;
        mean /= static_cast<double>(v.size());
        CHECK(lo >= 2.0);
        CHECK(hi < 5.0);
        CHECK(lo < 2.01);  // the range is attained at both ends
        CHECK(hi > 4.99);
        CHECK(std::abs(mean - 3.5) < 0.05);  // standard error 0.009

        // A column block of another parameter
        const Variable w = param({50, 10}, dt);
        const Tensor before = w.value().clone();
        init::uniform_(w, 10.0, 11.0, gen, init::cols(3, 7));
        check_block(w.value(), before, 0, 50, 3, 7, [](double x) { return x >= 10 && x < 11; });
    }
    // The same seed gives the same values; low == high gives that value
    Generator a(5), b(5);
    const Variable x = param({20}, float64), y = param({20}, float64);
    init::uniform_(x, -1, 1, a);
    init::uniform_(y, -1, 1, b);
    CHECK(max_abs_diff(x.value(), y.value()) == 0.0);
    init::uniform_(x, 0.5, 0.5, a);
    for (double e : x.value().to_vector()) CHECK(e == 0.5);
}

TEST_CASE("init: normal_ has the asked mean and standard deviation") {
    for (DType dt : {float32, float64}) {
        CAPTURE(name(dt));
        Generator gen(2);
        const Variable p = param({100, 100}, dt);
        init::normal_(p, 1.5, 0.5, gen);
        const auto v = p.value().to_vector();
        double mean = 0, sq = 0;
        for (double x : v) mean += x;
        mean /= static_cast<double>(v.size());
        for (double x : v) sq += (x - mean) * (x - mean);
        const double stddev = std::sqrt(sq / static_cast<double>(v.size() - 1));
        CHECK(std::abs(mean - 1.5) < 0.02);    // standard error 0.005
        CHECK(std::abs(stddev - 0.5) < 0.02);  // standard error 0.0035
    }
    // A row block: the other rows keep their values
    Generator gen(3);
    const Variable w = param({8, 4}, float64);
    const Tensor before = w.value().clone();
    init::normal_(w, 100.0, 1.0, gen, init::rows(5, 8));
    check_block(w.value(), before, 5, 8, 0, 4, [](double x) { return x > 90 && x < 110; });
    // stddev 0: every element is the mean
    init::normal_(w, -2.0, 0.0, gen);
    for (double e : w.value().to_vector()) CHECK(e == -2.0);
}

TEST_CASE("init: xavier_uniform_ uses the block's fans and attains its bound") {
    for (DType dt : {float32, float64}) {
        CAPTURE(name(dt));
        Generator gen(4);
        // Whole [30, 20] with gain 2: bound 2 sqrt(6 / 50)
        const Variable w = param({30, 20}, dt);
        init::xavier_uniform_(w, gen, 2.0);
        const double bound = 2.0 * std::sqrt(6.0 / 50.0);
        double worst = 0, sq = 0;
        for (double x : w.value().to_vector()) worst = std::max(worst, std::abs(x)), sq += x * x;
        CHECK(worst <= bound);
        CHECK(worst > 0.99 * bound);
        CHECK(std::abs(sq / 600.0 - bound * bound / 3) < 0.1 * bound * bound / 3);

        // Rows [20, 50) of a [60, 20] weight: the block's fans (20 in, 30 out), not the whole's
        const Variable big(Tensor::full({60, 20}, 7.0, dt), true);
        const Tensor before = big.value().clone();
        init::xavier_uniform_(big, gen, 1.0, init::rows(20, 50));
        const double block_bound = std::sqrt(6.0 / 50.0);
        check_block(big.value(), before, 20, 50, 0, 20,
                    [&](double x) { return std::abs(x) <= block_bound; });
        double block_max = 0;
        for (double x : block_values(big.value(), 20, 50, 0, 20))
            block_max = std::max(block_max, std::abs(x));
        CHECK(block_max > 0.99 * block_bound);
    }
    // 3-d [4, 5, 3]: fan_in 5 * 3, fan_out 4 * 3
    Generator gen(5);
    const Variable k = param({4, 5, 3}, float64);
    init::xavier_uniform_(k, gen);
    const double bound = std::sqrt(6.0 / 27.0);
    double worst = 0;
    for (double x : k.value().to_vector()) worst = std::max(worst, std::abs(x));
    CHECK(worst <= bound);
    CHECK(worst > 0.95 * bound);
}

namespace {
// Checks that a 2-d orthogonal_ result w [rows, cols] is the Q of the QR of the normal matrix
// that a generator seeded `seed` draws (row-major, rows x cols; transposed when rows < cols)
// with R's diagonal positive: R = Q^T A is upper triangular with a positive diagonal.
void check_is_q_of_normal(const std::vector<double>& w, std::size_t rows, std::size_t cols,
                          std::uint64_t seed, double tol) {
    Generator g(seed);
    std::vector<double> flat(rows * cols);
    for (double& v : flat) v = g.normal();
    const bool t = rows < cols;
    const std::size_t n = t ? rows : cols, m = t ? cols : rows;
    // Q [m, n], A [m, n]
    auto q = [&](std::size_t i, std::size_t j) { return t ? w[j * cols + i] : w[i * cols + j]; };
    auto a = [&](std::size_t i, std::size_t j) {
        return t ? flat[j * cols + i] : flat[i * cols + j];
    };
    double below = 0, min_diag = 1e9;
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t c = 0; c < n; ++c) {
            double dot = 0;
            for (std::size_t i = 0; i < m; ++i) dot += q(i, r) * a(i, c);
            if (r > c) below = std::max(below, std::abs(dot));
            if (r == c) min_diag = std::min(min_diag, dot);
        }
    CHECK(below < tol);
    CHECK(min_diag > 0);
}
}  // namespace

TEST_CASE("init: orthogonal_ gives orthonormal columns or rows, the whole or a gate's block") {
    // float64 [3H, H], H = 8: W^T W = I to 1e-12, and W is the signed Q of the normal draw
    {
        Generator gen(11);
        const Variable w = param({24, 8}, float64);
        init::orthogonal_(w, gen);
        const auto v = w.value().to_vector();
        CHECK(gram_error(v, 24, 8, true) < 1e-12);
        check_is_q_of_normal(v, 24, 8, 11, 1e-12);
        double off = 0;  // not a trivial answer such as [I; 0]
        for (std::size_t i = 8; i < 24; ++i)
            for (std::size_t j = 0; j < 8; ++j) off = std::max(off, std::abs(v[i * 8 + j]));
        CHECK(off > 0.1);
    }
    // Gain: W^T W = gain^2 I
    {
        Generator gen(12);
        const Variable w = param({10, 6}, float64);
        init::orthogonal_(w, gen, init::calculate_gain("tanh"));
        CHECK(gram_error(w.value().to_vector(), 10, 6, true, 25.0 / 9.0) < 1e-12);
        CHECK(gram_error(w.value().to_vector(), 10, 6, true) > 0.5);
    }
    // Fewer rows than columns: W W^T = I
    {
        Generator gen(13);
        const Variable w = param({5, 12}, float64);
        init::orthogonal_(w, gen);
        const auto v = w.value().to_vector();
        CHECK(gram_error(v, 5, 12, false) < 1e-12);
        check_is_q_of_normal(v, 5, 12, 13, 1e-12);
    }
    // 3-d [3, 2, 4]: seen as [3, 8], rows orthonormal
    {
        Generator gen(14);
        const Variable w = param({3, 2, 4}, float64);
        init::orthogonal_(w, gen);
        CHECK(gram_error(w.value().to_vector(), 3, 8, false) < 1e-12);
    }
    // float32 [3H, H]
    {
        Generator gen(15);
        const Variable w = param({24, 8}, float32);
        init::orthogonal_(w, gen);
        CHECK(w.dtype() == float32);
        CHECK(gram_error(w.value().to_vector(), 24, 8, true) < 1e-5);
    }
    // One gate of a GRU's weight_hh [3H, H]: rows [H, 2H) become an orthogonal [H, H] matrix,
    // the r and n gates' rows stay as they were
    for (DType dt : {float32, float64}) {
        CAPTURE(name(dt));
        const std::size_t H = 6;
        Generator gen(16);
        GRUCell gru(3, H, gen, dt);
        const Variable w = gru.parameter("weight_hh");
        REQUIRE(w.shape() == Shape{3 * H, H});
        const Tensor before = w.value().clone();
        Generator g(17);
        init::orthogonal_(w, g, 1.0, init::rows(H, 2 * H));
        check_block(gru.weight_hh.value(), before, H, 2 * H, 0, H, [](double) { return true; });
        const auto blk = block_values(gru.weight_hh.value(), H, 2 * H, 0, H);
        const double tol = dt == float64 ? 1e-12 : 1e-5;
        CHECK(gram_error(blk, H, H, true) < tol);
        CHECK(gram_error(blk, H, H, false) < tol);
        check_is_q_of_normal(blk, H, H, 17, dt == float64 ? 1e-12 : 1e-5);
    }
    // A column block of a [8, 6] matrix: cols [2, 5) is [8, 3], its columns orthonormal
    {
        Generator gen(18);
        const Variable w = param({8, 6}, float64);
        const Tensor before = w.value().clone();
        init::orthogonal_(w, gen, 1.0, init::cols(2, 5));
        check_block(w.value(), before, 0, 8, 2, 5, [](double) { return true; });
        CHECK(gram_error(block_values(w.value(), 0, 8, 2, 5), 8, 3, true) < 1e-12);
    }
}

TEST_CASE("init: calculate_gain as torch.nn.init.calculate_gain") {
    CHECK(init::calculate_gain("linear") == 1.0);
    CHECK(init::calculate_gain("sigmoid") == 1.0);
    CHECK(init::calculate_gain("conv2d") == 1.0);
    CHECK(init::calculate_gain("tanh") == doctest::Approx(5.0 / 3.0).epsilon(1e-15));
    CHECK(init::calculate_gain("relu") == doctest::Approx(std::sqrt(2.0)).epsilon(1e-15));
    CHECK(init::calculate_gain("leaky_relu") ==
          doctest::Approx(std::sqrt(2.0 / (1 + 0.01 * 0.01))).epsilon(1e-15));
    CHECK(init::calculate_gain("leaky_relu", 0.2) ==
          doctest::Approx(std::sqrt(2.0 / 1.04)).epsilon(1e-15));
    CHECK(init::calculate_gain("selu") == 0.75);
    const auto msg = message_of<ValueError>([] { init::calculate_gain("swish"); });
    CHECK(contains(msg, "init::calculate_gain"));
    CHECK(contains(msg, "'swish'"));
}

TEST_CASE("Module::parameter finds nested names; an unknown name lists the names there are") {
    Generator gen(20);
    Net net(gen);
    const Variable b = net.parameter("rnn.bias_ih_l0");
    CHECK(b.impl() == net.rnn->cell->bias_ih.impl());  // the parameter itself, not a copy
    CHECK(net.parameter("scale").impl() == net.scale.impl());
    CHECK(net.rnn->parameter("weight_hh_l0").impl() == net.rnn->cell->weight_hh.impl());
    CHECK(net.rnn->cell->parameter("bias_hh").impl() == net.rnn->cell->bias_hh.impl());
    for (const auto& [n, p] : net.named_parameters()) CHECK(net.parameter(n).impl() == p.impl());

    const auto msg = message_of<ValueError>([&] { net.parameter("rnn.bias_ih"); });
    CHECK(contains(msg, "Net::parameter"));
    CHECK(contains(msg, "'rnn.bias_ih'"));
    CHECK(contains(msg, "rnn.weight_ih_l0"));
    CHECK(contains(msg, "rnn.bias_hh_l0"));
    CHECK(contains(msg, "scale"));

    Many many(20);  // a long list is cut short, with the count
    const auto long_msg = message_of<ValueError>([&] { many.parameter("q"); });
    CHECK(contains(long_msg, "p0, p1"));
    CHECK(!contains(long_msg, "p19"));
    CHECK(contains(long_msg, "20 in all"));

    Empty empty;
    CHECK(contains(message_of<ValueError>([&] { empty.parameter("w"); }), "no parameters"));
}

TEST_CASE("init: the forget-gate one-liner on an LSTM layer's bias_ih_l0") {
    const std::size_t H = 5;
    Generator gen(21);
    OneLayerLSTM lstm(3, H, gen);
    const Tensor ih = lstm.cell->bias_ih.value().clone();
    const Tensor hh = lstm.cell->bias_hh.value().clone();

    init::constant_(lstm.parameter("bias_ih_l0"), 1.0, init::rows(H, 2 * H));

    const Tensor& now = lstm.cell->bias_ih.value();
    for (std::size_t j = 0; j < 4 * H; ++j) {
        CAPTURE(j);
        if (j >= H && j < 2 * H) {
            CHECK(now.flat(j) == 1.0);
        } else {
            CHECK(bits(now, j) == bits(ih, j));
        }
    }
    CHECK(max_abs_diff(lstm.cell->bias_hh.value(), hh) == 0.0);
    // The module's state sees it, and a step uses it: with zero weights and zero biases but
    // the forget slice, f = sigmoid(1) so c_t = sigmoid(1) c_{t-1}
    init::zeros_(lstm.parameter("weight_ih_l0"));
    init::zeros_(lstm.parameter("weight_hh_l0"));
    init::zeros_(lstm.parameter("bias_hh_l0"));
    init::zeros_(lstm.parameter("bias_ih_l0"), init::rows(0, H));
    init::zeros_(lstm.parameter("bias_ih_l0"), init::rows(2 * H, 4 * H));
    CHECK(lstm.state_dict()[2].second.flat(H) == 1.0);
    const Variable x(Tensor::ones({1, 3}, float64));
    const Variable h0(Tensor::zeros({1, H}, float64)), c0(Tensor::full({1, H}, 2.0, float64));
    const auto out = lstm.cell->step(lstm.cell->project_input(x), {h0, c0});
    CHECK(out[1].value().flat(0) == doctest::Approx(2.0 / (1.0 + std::exp(-1.0))));
}

TEST_CASE("init: errors name the function, the part and the shape") {
    Generator gen(30);
    const Variable p = param({6}, float64);
    const Tensor before = p.value().clone();

    // The block outside the parameter
    CHECK(message_of<ShapeError>([&] { init::constant_(p, 1.0, init::rows(4, 8)); }) ==
          "init::constant_: rows [4, 8) outside a parameter of shape [6]");
    CHECK(contains(message_of<ShapeError>([&] { init::zeros_(p, init::rows(3, 2)); }),
                   "init::zeros_: rows [3, 2) outside"));
    CHECK(contains(message_of<ShapeError>([&] { init::ones_(p, init::rows(-7, 2)); }),
                   "init::ones_: rows [-7, 2) outside a parameter of shape [6]"));
    const Variable w = param({4, 3}, float32);
    CHECK(contains(message_of<ShapeError>([&] { init::uniform_(w, 0, 1, gen, init::cols(1, 4)); }),
                   "init::uniform_: cols [1, 4) outside a parameter of shape [4,3]"));
    // An axis it does not have
    const auto axis_msg = message_of<ShapeError>([&] {
        init::normal_(w, 0, 1, gen, init::Part{2, 0, std::nullopt});
    });
    CHECK(contains(axis_msg, "init::normal_"));
    CHECK(contains(axis_msg, "axis 2 out of range"));
    CHECK(contains(axis_msg, "[4,3]"));
    CHECK(contains(message_of<ShapeError>([&] {
                       init::ones_(w, init::Part{-3, 0, std::nullopt});
                   }),
                   "axis -3 out of range"));
    CHECK(contains(message_of<ShapeError>([&] { init::zeros_(p, init::cols(0, 1)); }),
                   "init::zeros_: axis 1 out of range"));

    // Fewer than 2 dimensions
    const auto xavier_msg = message_of<ShapeError>([&] { init::xavier_uniform_(p, gen); });
    CHECK(contains(xavier_msg, "init::xavier_uniform_"));
    CHECK(contains(xavier_msg, "needs at least 2 dimensions"));
    CHECK(contains(xavier_msg, "[6]"));
    const auto orth_msg =
        message_of<ShapeError>([&] { init::orthogonal_(p, gen, 1.0, init::rows(0, 3)); });
    CHECK(contains(orth_msg, "init::orthogonal_"));
    CHECK(contains(orth_msg, "needs at least 2 dimensions"));
    CHECK(contains(orth_msg, "rows [0, 3)"));

    // Bad arguments
    CHECK(contains(message_of<ValueError>([&] { init::uniform_(p, 2.0, 1.0, gen); }),
                   "init::uniform_: low (2) must not exceed high (1)"));
    CHECK(contains(message_of<ValueError>([&] { init::normal_(p, 0.0, -0.5, gen); }),
                   "init::normal_: stddev must not be negative"));
    CHECK(contains(message_of<ValueError>([&] {
                       init::orthogonal_(w, gen, std::numeric_limits<double>::quiet_NaN());
                   }),
                   "init::orthogonal_: gain must be finite"));

    // Not a parameter: no grad, not a leaf, undefined
    const Variable plain(Tensor::zeros({3}, float64));
    const auto plain_msg = message_of<ValueError>([&] { init::ones_(plain); });
    CHECK(contains(plain_msg, "init::ones_"));
    CHECK(contains(plain_msg, "does not require grad"));
    CHECK(plain.value().flat(0) == 0.0);
    const Variable y = p * 2.0;
    const auto leaf_msg = message_of<ValueError>([&] { init::constant_(y, 1.0); });
    CHECK(contains(leaf_msg, "init::constant_"));
    CHECK(contains(leaf_msg, "not a leaf"));
    CHECK(contains(message_of<ValueError>([&] { init::xavier_uniform_(Variable(), gen); }),
                   "init::xavier_uniform_: the parameter is undefined"));

    // None of the failed calls wrote anything
    CHECK(max_abs_diff(p.value(), before) == 0.0);
}
