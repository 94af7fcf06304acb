// RecurrentOptions: every recurrent layer takes its options, dtype and layer-specific ones
// included, in the one struct; an option of another layer is an error.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include <tapegrad/tapegrad.hpp>

#include "tests/test_support.hpp"

using namespace tapegrad;
using tapegrad::test::message_of;

namespace {
bool all_of_dtype(const Module& m, DType dtype) {
    const auto ps = m.parameters();
    return !ps.empty() &&
           std::ranges::all_of(ps, [&](const Variable& p) { return p.dtype() == dtype; });
}
}  // namespace

TEST_CASE("layer options: GRU .variant reaches every cell") {
    Generator gen(1);
    GRU gru(2, 3, {.bidirectional = true, .variant = GRUVariant::reset_after}, gen);
    CHECK(gru.options().variant == GRUVariant::reset_after);
    for (std::size_t d = 0; d < 2; ++d)
        CHECK(dynamic_cast<GRUCell&>(gru.cell(0, d)).variant() == GRUVariant::reset_after);
    GRU cho(2, 3, {}, gen);
    CHECK(dynamic_cast<GRUCell&>(cho.cell(0)).variant() == GRUVariant::cho);
    CHECK(all_of_dtype(gru, float32));  // dtype unset: float32
}

TEST_CASE("layer options: LSTM .num_layers, .dtype and .init together") {
    constexpr std::size_t H = 4;
    Generator gen(2);
    LSTM lstm(3, H, {.num_layers = 2, .dtype = float64, .init = {.forget_bias = 1}}, gen);
    CHECK(lstm.options().num_layers == 2);
    CHECK(lstm.options().init.forget_bias == 1.0);
    CHECK(all_of_dtype(lstm, float64));
    REQUIRE(lstm.named_parameters().size() == 8);  // two layers of four
    CHECK(lstm.named_parameters()[4].first == "weight_ih_l1");
    for (std::size_t l = 0; l < 2; ++l) {
        CAPTURE(l);
        auto& cell = dynamic_cast<LSTMCell&>(lstm.cell(l));
        for (std::size_t j = H; j < 2 * H; ++j) {
            CHECK(cell.bias_ih.value().flat(j) == 1.0);  // the forget slice [H, 2H)
            CHECK(cell.bias_hh.value().flat(j) == 0.0);
        }
    }
    // Without .init the forget slice is random, so the check above sees the option.
    Generator gen2(2);
    LSTM plain(3, H, {.dtype = float64}, gen2);
    CHECK(dynamic_cast<LSTMCell&>(plain.cell(0)).bias_ih.value().flat(H) != 1.0);
    // The forward runs in float64.
    const Tensor x = Generator(3).normal({5, 2, 3}, 0, 1, float64);
    CHECK(lstm.forward(Variable(x)).output.dtype() == float64);
}

TEST_CASE("layer options: RNN .nonlinearity = relu is max(0, ...)") {
    constexpr std::size_t I = 2, H = 5, T = 4, B = 3;
    Generator g1(4), g2(4);
    RNN rnn(I, H, {.dtype = float64, .nonlinearity = Nonlinearity::relu}, g1);
    RNNCell cell(I, H, g2, float64, Nonlinearity::relu);  // same seed: the same weights
    const Tensor x = Generator(5).normal({T, B, I}, 0, 2, float64);
    const Tensor out = rnn.forward(Variable(x)).output.value();  // [T, B, H]

    // Step 0 by hand: h_0 = max(0, W_ih x_0 + b_ih + b_hh), from h_{-1} = 0.
    const Tensor &w = cell.weight_ih.value(), &bi = cell.bias_ih.value(),
                 &bh = cell.bias_hh.value();
    std::size_t zeros = 0;
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t k = 0; k < H; ++k) {
            double pre = bi.flat(k) + bh.flat(k);
            for (std::size_t i = 0; i < I; ++i) pre += w.flat(k * I + i) * x.flat(b * I + i);
            CHECK(out.flat(b * H + k) == doctest::Approx(std::max(0.0, pre)).epsilon(1e-12));
            zeros += pre < 0 ? 1 : 0;
        }
    CHECK(zeros > 0);  // relu clamped something: tanh would give a negative value there

    // Every step, against the relu cell run by hand.
    State h{constant(Tensor::zeros({B, H}, float64))};
    const auto steps = unbind(Variable(x), 0);
    for (std::size_t t = 0; t < T; ++t) {
        h = cell.step(cell.project_input(steps[t]), h);
        CHECK(max_abs_diff(select(Variable(out), 0, static_cast<long>(t)).value(), h[0].value()) <
              1e-12);
    }
}

TEST_CASE("layer options: a generic Recurrent converts its cells to .dtype") {
    const CellFactory float32_cells = [](std::size_t in, Generator& g) {
        return std::make_shared<RNNCell>(in, 3, g);  // a user's cells, float32
    };
    Generator g1(6), g2(6);
    Recurrent converted("Mine", float32_cells, 2, {.num_layers = 2, .dtype = float64}, g1);
    Recurrent own("Mine", float32_cells, 2, {.num_layers = 2}, g2);
    CHECK(all_of_dtype(converted, float64));
    CHECK(all_of_dtype(own, float32));  // unset: the cells' own dtype stands
    const auto a = converted.named_parameters(), b = own.named_parameters();
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i)
        CHECK(max_abs_diff(a[i].second.value(), b[i].second.value().to(float64)) == 0.0);
    const Tensor x = Generator(7).normal({3, 2, 2}, 0, 1, float64);
    CHECK(converted.forward(Variable(x)).output.dtype() == float64);

    // Unset does not force float32 on float64 cells.
    Generator g3(6);
    Recurrent float64_cells(
        "Mine",
        [](std::size_t in, Generator& g) { return std::make_shared<RNNCell>(in, 3, g, float64); },
        2, {}, g3);
    CHECK(all_of_dtype(float64_cells, float64));
}

TEST_CASE("layer options: an option of another layer throws ValueError naming both") {
    Generator gen(8);
    const auto msg = [&](auto make) { return message_of<ValueError>(make); };
    CHECK(msg([&] { LSTM(2, 3, {.variant = GRUVariant::reset_after}, gen); }) ==
          "LSTM: option variant applies to GRU only");
    CHECK(msg([&] { RNN(2, 3, {.variant = GRUVariant::reset_after}, gen); }) ==
          "RNN: option variant applies to GRU only");
    CHECK(msg([&] { LSTM(2, 3, {.nonlinearity = Nonlinearity::relu}, gen); }) ==
          "LSTM: option nonlinearity applies to RNN only");
    CHECK(msg([&] { GRU(2, 3, {.nonlinearity = Nonlinearity::relu}, gen); }) ==
          "GRU: option nonlinearity applies to RNN only");
    CHECK(msg([&] { RNN(2, 3, {.init = {.forget_bias = 1}}, gen); }) ==
          "RNN: option init applies to LSTM only");
    CHECK(msg([&] { GRU(2, 3, {.init = {.chrono_t_max = 10}}, gen); }) ==
          "GRU: option init applies to LSTM only");
    const CellFactory cells = [](std::size_t in, Generator& g) {
        return std::make_shared<GRUCell>(in, 3, g);
    };
    CHECK(msg([&] { Recurrent("Mine", cells, 2, {.variant = GRUVariant::reset_after}, gen); }) ==
          "Mine: option variant applies to GRU only");
    // Each layer's own option, and the others at their defaults, are accepted.
    CHECK(msg([&] {
              LSTM(2, 3, {.variant = GRUVariant::cho, .init = {.chrono_t_max = 10}}, gen);
          }) == "(no exception)");
    CHECK(msg([&] { RNN(2, 3, {.nonlinearity = Nonlinearity::relu, .init = {}}, gen); }) ==
          "(no exception)");
    // The existing checks stand.
    CHECK(msg([&] { GRU(2, 3, {.num_layers = 0}, gen); }) == "GRU: num_layers must be at least 1");
    CHECK(msg([&] { LSTM(2, 3, {.init = {.chrono_t_max = 1.5}}, gen); }) ==
          "LSTMCell: chrono_t_max must exceed 2, got 1.5");
}
