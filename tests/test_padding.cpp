// Variable lengths: padded steps are never read. Whatever the padding holds (NaN, Inf, a huge
// finite value), outputs, final states and every gradient are bitwise those of zero padding.
// And in anomaly mode a NaN in the data is reported at the caller's line.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include <tapegrad/tapegrad.hpp>
#include "tests/test_support.hpp"

using namespace tapegrad;
using tapegrad::test::bitwise_equal;

namespace {
// A user's cell, without an input projection: h_t = tanh(x_t U + h_{t-1} W) gated by
// g = σ(x_t V), h_t = g h_t + (1 - g) h_{t-1}.
class GatedTanhCell : public Cell {
public:
    GatedTanhCell(std::size_t in, std::size_t hidden, Generator& gen)
        : Cell("GatedTanhCell"), in_(in), hidden_(hidden) {
        u = register_parameter("u", gen.normal({in, hidden}, 0, 0.5, float64));
        w = register_parameter("w", gen.normal({hidden, hidden}, 0, 0.5, float64));
        v = register_parameter("v", gen.normal({in, hidden}, 0, 0.5, float64));
    }
    std::size_t input_size() const override { return in_; }
    std::size_t hidden_size() const override { return hidden_; }
    State step(const Variable& x, const State& s) override {
        const Variable g = sigmoid(matmul(x, v));
        return {lerp(s[0], tanh(matmul(x, u) + matmul(s[0], w)), g)};
    }
    Variable u, w, v;

private:
    std::size_t in_, hidden_;
};

std::shared_ptr<Recurrent> make_layer(const std::string& kind, Generator& gen) {
    RecurrentOptions two_bi{.num_layers = 2, .bidirectional = true, .dtype = float64};
    if (kind == "LSTM") return std::make_shared<LSTM>(3, 4, two_bi, gen);
    if (kind == "GRU") return std::make_shared<GRU>(3, 4, two_bi, gen);
    if (kind == "GRU reset_after") {
        two_bi.variant = GRUVariant::reset_after;
        return std::make_shared<GRU>(3, 4, two_bi, gen);
    }
    if (kind == "RNN") return std::make_shared<RNN>(3, 4, two_bi, gen);
    return std::make_shared<Recurrent>(
        "GatedTanh",
        [](std::size_t in, Generator& g) { return std::make_shared<GatedTanhCell>(in, 4, g); }, 3,
        two_bi, gen);
}

struct Run {
    RecurrentOutput out;
    std::vector<Tensor> grads;  // every parameter's, then the input's
};

Run run(Recurrent& layer, const Tensor& x0, const std::vector<std::size_t>& lengths,
        const Tensor& out_weight) {
    layer.zero_grad();
    Variable x(x0, true);
    Run r{layer.forward(x, {}, lengths), {}};
    Variable loss = sum(r.out.output * Variable(out_weight));
    for (const auto& s : r.out.states) loss = loss + sum(s * s);
    loss.backward();
    for (const auto& p : layer.parameters()) r.grads.push_back(p.grad());
    r.grads.push_back(x.grad());
    return r;
}
}  // namespace

TEST_CASE("padding: NaN, Inf or 1e30 in padded steps changes no output, state or gradient") {
    const std::size_t T = 5, B = 4;
    const std::vector<std::size_t> lengths{3, 5, 1, 4};  // unsorted
    for (const std::string kind : {"LSTM", "GRU", "GRU reset_after", "RNN", "user cell"}) {
        CAPTURE(kind);
        Generator gen(21);
        auto layer = make_layer(kind, gen);
        Tensor x = gen.normal({T, B, 3}, 0, 1, float64);
        const Tensor out_weight = gen.normal({T, B, 8}, 0, 1, float64);
        auto padded_with = [&](double fill) {
            return tapegrad::test::padded_with(x, lengths, fill);
        };
        const Run zeros = run(*layer, padded_with(0.0), lengths, out_weight);
        for (const double fill : {std::numeric_limits<double>::quiet_NaN(),
                                  std::numeric_limits<double>::infinity(), 1e30, -1e30}) {
            CAPTURE(fill);
            const Run other = run(*layer, padded_with(fill), lengths, out_weight);
            CHECK(all_finite(other.out.output.value()));
            CHECK(bitwise_equal(other.out.output.value(), zeros.out.output.value()));
            for (std::size_t k = 0; k < zeros.out.states.size(); ++k)
                CHECK(bitwise_equal(other.out.states[k].value(), zeros.out.states[k].value()));
            REQUIRE(other.grads.size() == zeros.grads.size());
            for (std::size_t k = 0; k < zeros.grads.size(); ++k) {
                CAPTURE(k);
                CHECK(bitwise_equal(other.grads[k], zeros.grads[k]));
            }
        }
    }
}

TEST_CASE("padding: batch_first inputs are never read past each length either") {
    Generator gen(22);
    LSTM lstm(2, 3, {.batch_first = true, .dtype = float64}, gen);
    Tensor x = gen.normal({2, 4, 2}, 0, 1, float64);  // [B, T, F]
    Tensor poisoned = x.clone();
    for (std::size_t t = 2; t < 4; ++t)
        for (std::size_t f = 0; f < 2; ++f)
            poisoned.set_flat((0 * 4 + t) * 2 + f, std::numeric_limits<double>::quiet_NaN());
    for (std::size_t t = 2; t < 4; ++t)
        for (std::size_t f = 0; f < 2; ++f) x.set_flat((0 * 4 + t) * 2 + f, 0.0);
    AnomalyGuard anomaly;  // the NaN is padding: not an anomaly
    const auto a = lstm.forward(Variable(poisoned), {}, {2, 4});
    const auto b = lstm.forward(Variable(x), {}, {2, 4});
    CHECK(bitwise_equal(a.output.value(), b.output.value()));
    CHECK(bitwise_equal(a.states[0].value(), b.states[0].value()));
}

TEST_CASE("anomaly mode: a NaN in the data is reported as the input's, at the caller's line") {
    Generator gen(23);
    GRU gru(2, 3, {.dtype = float64}, gen);
    Tensor x = gen.normal({4, 2, 2}, 0, 1, float64);
    x.set_flat((2 * 2 + 1) * 2 + 0, std::numeric_limits<double>::quiet_NaN());  // t 2, b 1
    AnomalyGuard anomaly;
    std::string msg;
    const int line = __LINE__ + 2;
    try {
        gru.forward(Variable(x, true));
    } catch (const AnomalyError& e) {
        msg = e.what();
    }
    CHECK(msg.find("GRU.forward") == 0);
    CHECK(msg.find("the input [4,2,2] holds nan at step 2 of sequence 1") != std::string::npos);
    CHECK(msg.find("test_padding.cpp:" + std::to_string(line)) != std::string::npos);
    // outside the data it is fine: that step is padding for sequence 1
    CHECK_NOTHROW(gru.forward(Variable(x, true), {}, {4, 2}));
}

TEST_CASE("anomaly mode: a NaN made inside a layer names the layer, direction and step") {
    Generator gen(24);
    RNN rnn(1, 2, {.bidirectional = true, .dtype = float64}, gen);
    // an Inf in the reverse cell's W_hh: its first step (t = 2) multiplies it by h = 0
    rnn.cell(0, 1).parameters()[1].mutable_value().set_flat(
        0, std::numeric_limits<double>::infinity());
    AnomalyGuard anomaly;
    std::string msg;
    try {
        rnn.forward(Variable(gen.normal({3, 1, 1}, 0, 1, float64)));
    } catch (const AnomalyError& e) {
        msg = e.what();
    }
    CHECK(msg.find("in RNN/layer 0/reverse, step 2") != std::string::npos);
}

TEST_CASE("where with one mask value per row selects whole rows, as per element") {
    Generator gen(25);
    const Tensor a = gen.normal({3, 2, 4}, 0, 1, float64), b = gen.normal({3, 2, 4}, 0, 1, float64);
    Tensor mask = Tensor::empty({3, 2, 1}, float32);
    for (std::size_t r = 0; r < 6; ++r) mask.set_flat(r, r % 3 == 0 ? 1.0 : 0.0);
    const Tensor both = where(mask, Variable(a), Variable(b)).value();
    const Tensor fill = where(mask, Variable(a), constant(-7.0, float64)).value();
    const Tensor fill_a = where(mask, constant(5.0, float64), Variable(b)).value();
    for (std::size_t i = 0; i < a.numel(); ++i) {
        const bool set = (i / 4) % 3 == 0;
        CHECK(both.flat(i) == (set ? a.flat(i) : b.flat(i)));
        CHECK(fill.flat(i) == (set ? a.flat(i) : -7.0));
        CHECK(fill_a.flat(i) == (set ? 5.0 : b.flat(i)));
    }
}
