// Modern cells (layers/modern_cells.hpp): minGRU (scan and log-space forms), minLSTM, IndRNN, a
// selective state space and sLSTM. Each passes gradcheck through the driver; the scan forms
// equal their own step forms; each equals its equations on a case worked by hand; sLSTM's
// stabiliser keeps it finite where a naive exp overflows; padding is never read.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <tapegrad/layers/modern_cells.hpp>
#include <tapegrad/tapegrad.hpp>
#include <tapegrad/train/gradcheck_doctest.hpp>
#include "tests/test_support.hpp"

using namespace tapegrad;
using tapegrad::test::bitwise_equal;

namespace {
using V = const std::vector<Variable>&;

// The same cell with sequence mode off: the driver runs its step() T times.
template <class C>
class Stepwise : public C {
public:
    using C::C;
    bool runs_sequences() const override { return false; }
};

enum class Kind { min_gru, min_gru_log, min_lstm, ind_rnn, ssm, slstm };
const Kind all_kinds[] = {Kind::min_gru, Kind::min_gru_log, Kind::min_lstm,
                          Kind::ind_rnn, Kind::ssm,         Kind::slstm};
const Kind scan_kinds[] = {Kind::min_gru, Kind::min_gru_log, Kind::min_lstm, Kind::ssm};

std::string kind_name(Kind k) {
    switch (k) {
        case Kind::min_gru: return "MinGRU";
        case Kind::min_gru_log: return "MinGRU log-space";
        case Kind::min_lstm: return "MinLSTM";
        case Kind::ind_rnn: return "IndRNN";
        case Kind::ssm: return "SelectiveSSM";
        case Kind::slstm: return "SLSTM";
    }
    return "";
}

template <class C, class... A>
std::shared_ptr<Cell> make(bool stepwise, A&&... a) {
    if (stepwise) return std::make_shared<Stepwise<C>>(std::forward<A>(a)...);
    return std::make_shared<C>(std::forward<A>(a)...);
}

CellFactory factory(Kind k, std::size_t H, bool stepwise, DType dt) {
    return [=](std::size_t in, Generator& g) -> std::shared_ptr<Cell> {
        switch (k) {
            case Kind::min_gru: return make<MinGRUCell>(stepwise, in, H, g, dt);
            case Kind::min_gru_log:
                return make<MinGRUCell>(stepwise, in, H, g, dt, MinGRUOptions{.log_space = true});
            case Kind::min_lstm: return make<MinLSTMCell>(stepwise, in, H, g, dt);
            case Kind::ind_rnn: return make<IndRNNCell>(stepwise, in, H, g, dt);
            case Kind::ssm: return make<SelectiveSSMCell>(stepwise, in, H, g, dt);
            case Kind::slstm: return make<SLSTMCell>(stepwise, in, H, g, dt);
        }
        return nullptr;
    };
}

std::size_t state_count(Kind k) { return k == Kind::slstm ? 4 : 1; }

// 2 layers, bidirectional, float64, input size 2, hidden size 3.
std::unique_ptr<Recurrent> stack(Kind k, bool stepwise, std::uint64_t seed) {
    Generator gen(seed);
    return std::make_unique<Recurrent>(
        kind_name(k), factory(k, 3, stepwise, float64), 2,
        RecurrentOptions{.num_layers = 2, .bidirectional = true, .dtype = float64}, gen);
}

Variable weighted(const Variable& y, std::uint64_t seed) {
    Generator g(seed);
    return sum(y * Variable(g.normal(y.shape(), 0, 1, y.dtype())));
}

// Positive values (every cell's state may start there, minGRU's log-space form must).
Tensor positive(const Shape& shape, std::uint64_t seed) {
    Generator g(seed);
    Tensor t = g.uniform(shape, 0.5, 1.5, float64);
    return t;
}

double largest_diff(const Tensor& a, const Tensor& b) {
    REQUIRE(a.shape() == b.shape());
    double d = 0;
    for (std::size_t i = 0; i < a.numel(); ++i) d = std::max(d, std::abs(a.flat(i) - b.flat(i)));
    return d;
}

struct Run {
    std::vector<Tensor> values;  // the output, then every final state
    std::vector<Tensor> grads;   // every parameter's, then the input's, then the initial states'
};

Run run(Recurrent& layer, const Tensor& x0, const std::vector<Tensor>& h0,
        const std::vector<std::size_t>& lengths) {
    layer.zero_grad();
    Variable x(x0, true);
    std::vector<Variable> initial;
    for (const Tensor& t : h0) initial.emplace_back(t, true);
    const auto out = layer.forward(x, initial, lengths);
    Variable loss = weighted(out.output, 1);
    Run r;
    r.values.push_back(out.output.value());
    for (std::size_t k = 0; k < out.states.size(); ++k) {
        loss = loss + weighted(out.states[k], 2 + k);
        r.values.push_back(out.states[k].value());
    }
    loss.backward();
    for (const auto& p : layer.parameters()) r.grads.push_back(p.grad());
    r.grads.push_back(x.grad());
    for (const auto& v : initial) r.grads.push_back(v.grad());
    return r;
}

void set(Variable& p, const std::vector<double>& values) {
    REQUIRE(p.value().numel() == values.size());
    for (std::size_t i = 0; i < values.size(); ++i) p.mutable_value().set_flat(i, values[i]);
}

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }
double softplus(double v) { return std::log1p(std::exp(v)); }

// A 1-layer, 1-direction layer of one cell with I = H = 1, run over T = 2 steps, B = 1, from
// the given initial states; returns the two outputs and the final states.
struct Tiny {
    std::unique_ptr<Recurrent> layer;
    std::vector<double> run(const std::vector<double>& x, const std::vector<double>& h0) {
        std::vector<Variable> initial;
        for (double v : h0) initial.emplace_back(Tensor::from({v}, {1, 1, 1}, float64));
        const auto out =
            layer->forward(Variable(Tensor::from({x[0], x[1]}, {2, 1, 1}, float64)), initial);
        std::vector<double> r{out.output.value().flat(0), out.output.value().flat(1)};
        for (const auto& s : out.states) r.push_back(s.value().flat(0));
        return r;
    }
};
Tiny tiny(Kind k, bool stepwise) {
    Generator gen(3);
    return {std::make_unique<Recurrent>(kind_name(k), factory(k, 1, stepwise, float64), 1,
                                        RecurrentOptions{.dtype = float64}, gen)};
}
}  // namespace

TEST_CASE("modern cells: 2-layer bidirectional stacks with unsorted lengths pass gradcheck") {
    const std::vector<std::size_t> lengths{5, 2, 4};
    for (const Kind k : all_kinds) {
        CAPTURE(kind_name(k));
        auto layer = stack(k, false, 7);
        const std::size_t S = state_count(k);
        std::vector<Tensor> inputs{Generator(8).normal({5, 3, 2}, 0, 1, float64)};
        for (std::size_t s = 0; s < S; ++s) inputs.push_back(positive({4, 3, 3}, 20 + s));
        auto f = [&](V x) {
            const std::vector<Variable> initial(x.begin() + 1, x.end());
            const auto out = layer->forward(x[0], initial, lengths);
            Variable loss = weighted(out.output, 1);
            for (std::size_t s = 0; s < S; ++s) loss = loss + weighted(out.states[s], 2 + s);
            return loss;
        };
        CHECK_GRADCHECK(*layer, f, inputs);
        if (k == Kind::min_gru_log)  // a negative initial state has no logarithm
            CHECK_THROWS_AS(layer->forward(Variable(inputs[0]), {Variable(-inputs[1])}),
                            ValueError);
        // and from the driver's zero initial state (log h0 = −Inf in the log-space form)
        auto g = [&](V x) {
            const auto out = layer->forward(x[0], {}, lengths);
            return weighted(out.output, 3) + weighted(out.states[0], 4);
        };
        CHECK_GRADCHECK(*layer, g, {inputs[0]});
    }
}

TEST_CASE("modern cells: scan forms equal their step forms, values and every gradient") {
    const std::vector<std::size_t> lengths{5, 2, 4};
    const Tensor x = Generator(9).normal({5, 3, 2}, 0, 1, float64);
    const std::vector<Tensor> h0{positive({4, 3, 3}, 10)};
    for (const Kind k : scan_kinds) {
        CAPTURE(kind_name(k));
        auto whole = stack(k, false, 11), steps = stack(k, true, 11);
        REQUIRE(whole->cell(1, 1).runs_sequences());
        REQUIRE_FALSE(steps->cell(1, 1).runs_sequences());
        REQUIRE(whole->named_parameters().size() == steps->named_parameters().size());
        for (const bool zero_start : {false, true}) {
            CAPTURE(zero_start);
            const Run a = run(*whole, x, zero_start ? std::vector<Tensor>{} : h0, lengths);
            const Run b = run(*steps, x, zero_start ? std::vector<Tensor>{} : h0, lengths);
            REQUIRE(a.values.size() == b.values.size());
            for (std::size_t i = 0; i < a.values.size(); ++i) {
                CAPTURE(i);
                CHECK(all_finite(a.values[i]));
                CHECK(largest_diff(a.values[i], b.values[i]) <= 1e-12);
            }
            REQUIRE(a.grads.size() == b.grads.size());
            for (std::size_t i = 0; i < a.grads.size(); ++i) {
                CAPTURE(i);
                if (!b.grads[i].defined()) {  // initial states that are not inputs
                    CHECK_FALSE(a.grads[i].defined());
                    continue;
                }
                REQUIRE(a.grads[i].defined());
                CHECK(all_finite(a.grads[i]));
                CHECK(largest_diff(a.grads[i], b.grads[i]) <= 1e-12);
            }
        }
    }
}

TEST_CASE("modern cells: each cell equals its equations on a case worked by hand") {
    const std::vector<double> x{0.5, -0.8};
    const double h_init = 0.3;
    // P_t for weights w and biases b of I = 1: P_t = w x_t + b, gate by gate
    auto P = [&](const std::vector<double>& w, const std::vector<double>& b, std::size_t t,
                 std::size_t gate) { return w[gate] * x[t] + b[gate]; };
    const std::vector<double> w{0.7, -1.3, 0.9, 0.4}, b{0.2, 0.4, -0.1, 0.3};

    SUBCASE("MinGRU, both forms, scan and steps") {
        for (const bool log_space : {false, true})
            for (const bool stepwise : {false, true}) {
                CAPTURE(log_space);
                CAPTURE(stepwise);
                Tiny t = tiny(log_space ? Kind::min_gru_log : Kind::min_gru, stepwise);
                auto& cell = dynamic_cast<MinGRUCell&>(t.layer->cell(0));
                set(cell.weight_ih, {w[0], w[1]});
                set(cell.bias_ih, {b[0], b[1]});
                double h = h_init;
                std::vector<double> expected;
                for (std::size_t s = 0; s < 2; ++s) {
                    const double z = sigmoid(P(w, b, s, 0)), hat = P(w, b, s, 1);
                    // g(v) = v + 0.5 for v >= 0, σ(v) below (ĥ is −0.25 then 1.44: both arms)
                    const double cand = !log_space ? hat : hat >= 0 ? hat + 0.5 : sigmoid(hat);
                    h = (1 - z) * h + z * cand;
                    expected.push_back(h);
                }
                const auto got = t.run(x, {h_init});
                CHECK(got[0] == doctest::Approx(expected[0]).epsilon(1e-12));
                CHECK(got[1] == doctest::Approx(expected[1]).epsilon(1e-12));
                CHECK(got[2] == doctest::Approx(expected[1]).epsilon(1e-12));
            }
    }
    SUBCASE("MinLSTM") {
        for (const bool stepwise : {false, true}) {
            Tiny t = tiny(Kind::min_lstm, stepwise);
            auto& cell = dynamic_cast<MinLSTMCell&>(t.layer->cell(0));
            set(cell.weight_ih, {w[0], w[1], w[2]});
            set(cell.bias_ih, {b[0], b[1], b[2]});
            double h = h_init;
            std::vector<double> expected;
            for (std::size_t s = 0; s < 2; ++s) {
                const double f = sigmoid(P(w, b, s, 0)), i = sigmoid(P(w, b, s, 1));
                h = f / (f + i) * h + i / (f + i) * P(w, b, s, 2);
                expected.push_back(h);
            }
            const auto got = t.run(x, {h_init});
            CHECK(got[0] == doctest::Approx(expected[0]).epsilon(1e-12));
            CHECK(got[1] == doctest::Approx(expected[1]).epsilon(1e-12));
        }
    }
    SUBCASE("IndRNN") {
        Tiny t = tiny(Kind::ind_rnn, false);
        auto& cell = dynamic_cast<IndRNNCell&>(t.layer->cell(0));
        set(cell.weight_ih, {1.5});
        set(cell.weight_hh, {0.8});
        set(cell.bias_ih, {-0.2});
        const double h1 = std::max(0.0, 1.5 * x[0] - 0.2 + 0.8 * h_init);  // 0.79
        const double h2 = std::max(0.0, 1.5 * x[1] - 0.2 + 0.8 * h1);      // relu(−0.768) = 0
        const auto got = t.run(x, {h_init});
        CHECK(got[0] == doctest::Approx(h1).epsilon(1e-12));
        CHECK(got[1] == 0.0);
        CHECK(h2 == 0.0);
    }
    SUBCASE("SelectiveSSM") {
        for (const bool stepwise : {false, true}) {
            Tiny t = tiny(Kind::ssm, stepwise);
            auto& cell = dynamic_cast<SelectiveSSMCell&>(t.layer->cell(0));
            CHECK(cell.A_log.value().flat(0) == 0.0);  // log 1
            set(cell.weight_ih, {w[0], w[1]});
            set(cell.bias_ih, {b[0], b[1]});
            set(cell.A_log, {0.6});
            const double A = softplus(0.6);
            double h = h_init;
            std::vector<double> expected;
            for (std::size_t s = 0; s < 2; ++s) {
                const double delta = softplus(P(w, b, s, 0));
                h = std::exp(-delta * A) * h + delta * P(w, b, s, 1);
                expected.push_back(h);
            }
            const auto got = t.run(x, {h_init});
            CHECK(got[0] == doctest::Approx(expected[0]).epsilon(1e-12));
            CHECK(got[1] == doctest::Approx(expected[1]).epsilon(1e-12));
        }
    }
    SUBCASE("SLSTM, from the zero state") {
        Tiny t = tiny(Kind::slstm, false);
        auto& cell = dynamic_cast<SLSTMCell&>(t.layer->cell(0));
        const std::vector<double> u{0.3, -0.6, 0.8, 0.5};
        set(cell.weight_ih, w);
        set(cell.bias_ih, b);
        set(cell.weight_hh, u);
        // the unstabilised equations: c_t = e^f̃ c + e^ĩ tanh z̃, n_t = e^f̃ n + e^ĩ
        double h = 0, c = 0, n = 0, m = 0;
        std::vector<double> expected;
        for (std::size_t s = 0; s < 2; ++s) {
            const double gi = P(w, b, s, 0) + u[0] * h, gf = P(w, b, s, 1) + u[1] * h;
            const double gz = P(w, b, s, 2) + u[2] * h, go = P(w, b, s, 3) + u[3] * h;
            c = std::exp(gf) * c + std::exp(gi) * std::tanh(gz);
            n = std::exp(gf) * n + std::exp(gi);
            m = std::max(gf + m, gi);
            h = sigmoid(go) * c / n;
            expected.push_back(h);
        }
        const auto got = t.run(x, {0, 0, 0, 0});
        CHECK(got[0] == doctest::Approx(expected[0]).epsilon(1e-12));
        CHECK(got[1] == doctest::Approx(expected[1]).epsilon(1e-12));
        CHECK(got[5] == doctest::Approx(m).epsilon(1e-12));  // the stabiliser m_2
        // the stabilised c and n are the plain ones scaled by e^{−m}
        CHECK(got[3] == doctest::Approx(c * std::exp(-m)).epsilon(1e-12));
        CHECK(got[4] == doctest::Approx(n * std::exp(-m)).epsilon(1e-12));
    }
}

TEST_CASE("modern cells: the sLSTM stabiliser stays finite where a naive exp overflows") {
    // pre-activations ~1000 in float64 and ~100 in float32: e^ĩ overflows either type
    for (const DType dt : {float64, float32}) {
        const double big = dt == float64 ? 1000 : 100;
        CAPTURE(big);
        Generator gen(3);
        Recurrent layer("SLSTM", factory(Kind::slstm, 1, false, dt), 1, {.dtype = dt}, gen);
        auto& cell = dynamic_cast<SLSTMCell&>(layer.cell(0));
        set(cell.weight_ih, {2.0, 3.0, 0.5, -0.4});
        set(cell.bias_ih, {big, big - 4, 0.3, 0.2});
        set(cell.weight_hh, {0.3, -0.2, 0.7, 0.1});
        if (dt == float64) CHECK(std::isinf(std::exp(big)));
        else CHECK(std::isinf(std::exp(static_cast<float>(big))));
        const std::vector<double> x{0.5, -0.8};
        Variable xv(Tensor::from({x[0], x[1]}, {2, 1, 1}, dt), true);
        const auto out = layer.forward(xv);
        sum(out.output).backward();
        CHECK(all_finite(out.output.value()));
        CHECK(all_finite(xv.grad()));
        for (const auto& p : layer.parameters()) CHECK(all_finite(p.grad()));
        // the naive formula in long double, from the weights as stored
        auto at = [](const Variable& p, std::size_t i) {
            return static_cast<long double>(p.value().flat(i));
        };
        long double h = 0, c = 0, n = 0;
        for (std::size_t s = 0; s < 2; ++s) {
            long double g[4];
            for (std::size_t k = 0; k < 4; ++k)
                g[k] = at(cell.weight_ih, k) * static_cast<long double>(xv.value().flat(s)) +
                       at(cell.bias_ih, k) + at(cell.weight_hh, k) * h;
            c = std::exp(g[1]) * c + std::exp(g[0]) * std::tanh(g[2]);
            n = std::exp(g[1]) * n + std::exp(g[0]);
            h = 1 / (1 + std::exp(-g[3])) * c / n;
            CHECK(out.output.value().flat(s) ==
                  doctest::Approx(static_cast<double>(h)).epsilon(dt == float64 ? 1e-12 : 1e-4));
        }
    }
}

TEST_CASE("modern cells: padding is never read by the scan cells (NaN there changes nothing)") {
    const std::size_t T = 5, B = 3;
    const std::vector<std::size_t> lengths{5, 2, 4};
    const Tensor x = Generator(12).normal({T, B, 2}, 0, 1, float64);
    auto padded_with = [&](double fill) { return tapegrad::test::padded_with(x, lengths, fill); };
    for (const Kind k : scan_kinds) {
        CAPTURE(kind_name(k));
        auto layer = stack(k, false, 13);
        for (const bool zero_start : {false, true}) {
            const std::vector<Tensor> h0 =
                zero_start ? std::vector<Tensor>{} : std::vector<Tensor>{positive({4, B, 3}, 14)};
            const Run zeros = run(*layer, padded_with(0.0), h0, lengths);
            const Run nan =
                run(*layer, padded_with(std::numeric_limits<double>::quiet_NaN()), h0, lengths);
            for (std::size_t i = 0; i < zeros.values.size(); ++i) {
                CHECK(all_finite(nan.values[i]));
                CHECK(bitwise_equal(nan.values[i], zeros.values[i]));
            }
            for (std::size_t i = 0; i < zeros.grads.size(); ++i) {
                CAPTURE(i);
                if (!zeros.grads[i].defined()) continue;
                CHECK(all_finite(nan.grads[i]));
                CHECK(bitwise_equal(nan.grads[i], zeros.grads[i]));
            }
            // and the output at padded steps is 0
            for (std::size_t t = 0; t < T; ++t)
                for (std::size_t b = 0; b < B; ++b)
                    if (t >= lengths[b])
                        for (std::size_t f = 0; f < 6; ++f)
                            CHECK(zeros.values[0].flat((t * B + b) * 6 + f) == 0.0);
        }
    }
}
