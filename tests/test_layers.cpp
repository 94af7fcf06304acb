// Layers: cells and the recurrent driver, gradchecked, compared with PyTorch, and padding,
// batch_first, truncated BPTT and user cells.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <tapegrad/core/counters.hpp>
#include <tapegrad/tapegrad.hpp>

#include <tapegrad/train/gradcheck_doctest.hpp>
#include "tests/test_support.hpp"

using namespace tapegrad;

#ifndef TAPEGRAD_SOURCE_DIR
#error "TAPEGRAD_SOURCE_DIR must point at the source tree (tests/CMakeLists.txt defines it)"
#endif

namespace {
using V = const std::vector<Variable>&;

// A minimal gated unit (Zhou et al. 2016), a cell tapegrad does not ship, without an input
// projection: the driver gives it raw inputs.
class MinimalGatedUnit : public Cell {
public:
    MinimalGatedUnit(std::size_t in, std::size_t hidden, Generator& g)
        : Cell("MGU"), in_(in), hidden_(hidden) {
        const double k = 1.0 / std::sqrt(static_cast<double>(hidden));
        w_f = register_parameter("w_f", g.uniform({in + hidden, hidden}, -k, k, float32));
        b_f = register_parameter("b_f", Tensor::zeros({hidden}, float32));
        w_h = register_parameter("w_h", g.uniform({in + hidden, hidden}, -k, k, float32));
    }
    std::size_t input_size() const override { return in_; }
    std::size_t hidden_size() const override { return hidden_; }
    State step(const Variable& x, const State& s) override {
        const Variable f =
            sigmoid(matmul(concat({x, s[0]}, 1), w_f) + b_f);  // f = σ(W_f[x, h] + b_f)
        const Variable candidate =
            tanh(matmul(concat({x, f * s[0]}, 1), w_h));  // h̃ = tanh(W_h[x, f*h])
        return {(1.0 - f) * s[0] + f * candidate};        // h = (1-f) h + f h̃
    }
    Variable w_f, b_f, w_h;

private:
    std::size_t in_, hidden_;
};

Variable weighted(const Variable& y, std::uint64_t seed) {
    Generator g(seed);
    return sum(y * Variable(g.normal(y.shape(), 0, 1, y.dtype())));
}

std::vector<Tensor> random_inputs(std::vector<Shape> shapes, std::uint64_t seed) {
    Generator g(seed);
    std::vector<Tensor> out;
    for (auto& s : shapes) out.push_back(g.normal(s, 0, 1, float64));
    return out;
}

TensorFile& reference() {
    static TensorFile file = load_safetensors(std::string(TAPEGRAD_SOURCE_DIR) +
                                              "/tests/reference/rnn_reference.safetensors");
    return file;
}
const Tensor& reference_tensor(const std::string& name) {
    const Tensor* t = reference().find(name);
    if (!t) FAIL("reference tensor missing: " << name);
    return *t;
}
}  // namespace

TEST_CASE("cells: gradcheck over every parameter, the input and the state (float64)") {
    Generator g(1);
    RNNCell rnn(3, 2, g);
    RNNCell rnn_relu(3, 2, g, float32, Nonlinearity::relu);
    GRUCell gru(3, 2, g);
    GRUCell gru_after(3, 2, g, float32, GRUVariant::reset_after);
    for (Cell* cell : std::initializer_list<Cell*>{&rnn, &rnn_relu, &gru, &gru_after}) {
        CAPTURE(cell->type_name());
        auto f = [&](V x) { return weighted(cell->step(cell->project_input(x[0]), {x[1]})[0], 7); };
        CHECK_GRADCHECK(*cell, f, random_inputs({{2, 3}, {2, 2}}, 3));
    }
    LSTMCell lstm(3, 2, g, float32, {.forget_bias = 1.0});
    auto f = [&](V x) {
        State s = lstm.step(lstm.project_input(x[0]), {x[1], x[2]});
        return weighted(s[0], 7) + weighted(s[1], 8);
    };
    CHECK_GRADCHECK(lstm, f, random_inputs({{2, 3}, {2, 2}, {2, 2}}, 4));
    CHECK(lstm.dtype() == float32);  // restored after the check
}

TEST_CASE("cells: gradgradcheck for the LSTM and both GRU conventions") {
    Generator g(2);
    LSTMCell lstm(2, 2, g);
    auto f = [&](V x) {
        State s = lstm.step(lstm.project_input(x[0]), {x[1], x[2]});
        return weighted(s[0], 1) + weighted(s[1], 2);
    };
    CHECK_GRADGRADCHECK(lstm, f, random_inputs({{2, 2}, {2, 2}, {2, 2}}, 5));
    for (auto variant : {GRUVariant::cho, GRUVariant::reset_after}) {
        GRUCell gru(2, 2, g, float32, variant);
        auto fg = [&](V x) { return weighted(gru.step(gru.project_input(x[0]), {x[1]})[0], 3); };
        CHECK_GRADGRADCHECK(gru, fg, random_inputs({{2, 2}, {2, 2}}, 6));
    }
}

TEST_CASE("cells: LSTM initialisation options") {
    Generator g(3);
    LSTMCell plus_one(2, 8, g, float32, {.forget_bias = 1.0});
    for (std::size_t j = 0; j < 8; ++j) {
        CHECK(plus_one.bias_ih.value().flat(8 + j) + plus_one.bias_hh.value().flat(8 + j) == 1.0);
    }
    LSTMCell chrono(2, 8, g, float32, {.chrono_t_max = 100});
    for (std::size_t j = 0; j < 8; ++j) {
        const double bf = chrono.bias_ih.value().flat(8 + j), bi = chrono.bias_ih.value().flat(j);
        CHECK(bf >= 0.0);  // log(U(1, 99)) in [0, log 99]
        CHECK(bf <= std::log(99.0) + 1e-6);
        CHECK(bi == -bf);
        CHECK(chrono.bias_hh.value().flat(8 + j) == 0.0);
    }
    CHECK_THROWS_AS(LSTMCell(2, 8, g, float32, {.chrono_t_max = 1.5}), ValueError);
}

TEST_CASE("recurrent: names and shapes follow PyTorch") {
    Generator g(4);
    LSTM lstm(3, 5, {.num_layers = 2, .bidirectional = true}, g);
    std::vector<std::string> names;
    for (auto& [n, p] : lstm.named_parameters()) names.push_back(n);
    REQUIRE(names.size() == 16);
    CHECK(names[0] == "weight_ih_l0");
    CHECK(names[3] == "bias_hh_l0");
    CHECK(names[4] == "weight_ih_l0_reverse");
    CHECK(names[8] == "weight_ih_l1");
    CHECK(names[15] == "bias_hh_l1_reverse");
    CHECK(lstm.named_parameters()[8].second.shape() ==
          Shape{20, 10});  // layer 1 sees both directions
    Variable x(g.normal({6, 4, 3}, 0, 1, float32));
    auto out = lstm.forward(x);
    CHECK(out.output.shape() == Shape{6, 4, 10});
    REQUIRE(out.states.size() == 2);
    CHECK(out.states[0].shape() == Shape{4, 4, 5});
    CHECK_THROWS_AS(lstm.forward(Variable(g.normal({6, 4, 2}, 0, 1, float32))), ShapeError);
    CHECK_THROWS_AS(lstm.forward(x, {}, {6, 0, 3, 2}), ValueError);
    CHECK_THROWS_AS(lstm.forward(x, {}, {6, 3}), ShapeError);
    CHECK_THROWS_AS(lstm.forward(Variable(g.normal({6, 4, 3}, 0, 1, float64))), DTypeError);
}

TEST_CASE("recurrent: 2-layer bidirectional stack with variable lengths passes gradcheck") {
    Generator g(5);
    LSTM lstm(2, 2, {.num_layers = 2, .bidirectional = true}, g);
    auto f = [&](V x) {
        auto out = lstm.forward(x[0], {x[1], x[2]}, {3, 1});
        return weighted(out.output, 1) + weighted(out.states[0], 2) + weighted(out.states[1], 3);
    };
    CHECK_GRADCHECK(lstm, f, random_inputs({{3, 2, 2}, {4, 2, 2}, {4, 2, 2}}, 7));
}

TEST_CASE("recurrent: a user's cell gets layers, bidirectional, lengths and gradcheck") {
    Generator g(6);
    Recurrent mgu(
        "MGU",
        [](std::size_t in, Generator& gen) {
            return std::make_shared<MinimalGatedUnit>(in, 2, gen);
        },
        2, {.num_layers = 2, .bidirectional = true}, g);
    CHECK(mgu.named_parameters()[0].first == "w_f_l0");
    auto f = [&](V x) {
        auto out = mgu.forward(x[0], {x[1]}, {2, 3});
        return weighted(out.output, 1) + weighted(out.states[0], 2);
    };
    CHECK_GRADCHECK(mgu, f, random_inputs({{3, 2, 2}, {4, 2, 2}}, 8));
}

TEST_CASE("recurrent: hoisting the input projection changes nothing") {
    // The same LSTM cell with and without the hoisted projection gives the same numbers.
    struct Unhoisted : Cell {
        std::shared_ptr<LSTMCell> inner;
        explicit Unhoisted(std::shared_ptr<LSTMCell> c) : Cell("Unhoisted"), inner(c) {
            register_flat("", c);
        }
        std::size_t input_size() const override { return inner->input_size(); }
        std::size_t hidden_size() const override { return inner->hidden_size(); }
        std::size_t state_count() const override { return 2; }
        State step(const Variable& x, const State& s) override {
            return inner->step(inner->project_input(x), s);
        }
    };
    Generator g1(9), g2(9), gx(10);
    LSTM hoisted(3, 4, {.dtype = float64}, g1);
    Recurrent plain(
        "LSTM",
        [](std::size_t in, Generator& g) {
            return std::make_shared<Unhoisted>(std::make_shared<LSTMCell>(in, 4, g, float64));
        },
        3, {}, g2);
    Variable x(gx.normal({5, 2, 3}, 0, 1, float64));
    CHECK(max_abs_diff(hoisted.forward(x).output.value(), plain.forward(x).output.value()) < 1e-14);
}

TEST_CASE("recurrent: the Cho GRU slices W_hh once per sequence; the numbers are the steps' own") {
    // Through the driver the Cho GRU's steps share the slices of W_hh its sequence_step() cut.
    // The same cell's step() on its own (slices cut at every step) must give the same outputs
    // and gradients.
    const std::size_t I = 3, H = 4, T = 5, B = 2;
    Generator g(21), gx(22);
    GRU gru(I, H, {.dtype = float64}, g);
    Cell& cell = gru.cell(0);
    const Variable x(gx.normal({T, B, I}, 0, 1, float64), true);
    auto params = gru.parameters();
    std::vector<Variable> wanted(params.begin(), params.end());
    wanted.push_back(x);

    const std::size_t before = detail::products_read_in_place();
    const Variable out = gru.forward(x).output;
    const auto driven = grad(weighted(out, 1), wanted);
    // w_rz's and w_n's per-step products read their columns of the projection's gradient in
    // place (rows 3H apart), stacking no copy
    CHECK(detail::products_read_in_place() - before == 2);

    Variable h = constant(Tensor::zeros({B, H}, float64));
    std::vector<Variable> hs;
    for (std::size_t t = 0; t < T; ++t) {
        const Variable xt = reshape(narrow(x, 0, static_cast<long>(t), 1), Shape{B, I});
        h = cell.step(cell.project_input(xt), {h})[0];
        hs.push_back(h);
    }
    const Variable alone_out = stack(hs, 0);
    CHECK(max_abs_diff(out.value(), alone_out.value()) < 1e-14);
    {  // a user's own loop with the step of one sequence: the same numbers
        const Cell::StepFn step = cell.sequence_step();
        Variable hh = constant(Tensor::zeros({B, H}, float64));
        for (std::size_t t = 0; t < T; ++t) {
            const Variable xt = reshape(narrow(x, 0, static_cast<long>(t), 1), Shape{B, I});
            hh = step(cell.project_input(xt), {hh})[0];
            CHECK(max_abs_diff(hh.value(), hs[t].value()) < 1e-14);
        }
    }
    const auto alone = grad(weighted(alone_out, 1), wanted);
    for (std::size_t i = 0; i < wanted.size(); ++i) {
        CAPTURE(i);
        CHECK(max_abs_diff(driven[i].value(), alone[i].value()) < 1e-13);
    }

    // a 2-layer bidirectional Cho GRU with lengths passes gradcheck through the driver
    Generator g2(23);
    GRU stacked(2, 2, {.num_layers = 2, .bidirectional = true}, g2);
    auto f = [&](V v) {
        auto o = stacked.forward(v[0], {v[1]}, {3, 1});
        return weighted(o.output, 1) + weighted(o.states[0], 2);
    };
    CHECK_GRADCHECK(stacked, f, random_inputs({{3, 2, 2}, {4, 2, 2}}, 24));
}

TEST_CASE(
    "recurrent: outputs, final states and gradients match PyTorch (float64, 2 layers, "
    "bidirectional)") {
    const std::size_t I = 3, H = 4;
    for (std::string kind : {"rnn", "lstm", "gru"}) {
        for (bool packed : {false, true}) {
            const std::string p = kind + (packed ? "_packed." : ".");
            CAPTURE(p);
            Generator g(0);
            RecurrentOptions opt{.num_layers = 2, .bidirectional = true, .dtype = float64};
            std::unique_ptr<Recurrent> model;
            if (kind == "rnn") model = std::make_unique<RNN>(I, H, opt, g);
            if (kind == "lstm") model = std::make_unique<LSTM>(I, H, opt, g);
            if (kind == "gru") {
                opt.variant = GRUVariant::reset_after;
                model = std::make_unique<GRU>(I, H, opt, g);
            }
            std::vector<std::pair<std::string, Tensor>> state;
            for (auto& [n, t] : reference().tensors)
                if (n.rfind(p + "param.", 0) == 0) state.emplace_back(n.substr(p.size() + 6), t);
            REQUIRE(model->load_state_dict(state).ok());

            Variable x(reference_tensor(p + "x"), true), h0(reference_tensor(p + "h0"), true), c0;
            std::vector<Variable> initial{h0};
            if (kind == "lstm") {
                c0 = Variable(reference_tensor(p + "c0"), true);
                initial.push_back(c0);
            }
            const std::vector<std::size_t> lengths =
                packed ? std::vector<std::size_t>{5, 2, 4} : std::vector<std::size_t>{};
            auto out = model->forward(x, initial, lengths);
            CHECK(max_abs_diff(out.output.value(), reference_tensor(p + "out")) < 1e-12);
            CHECK(max_abs_diff(out.states[0].value(), reference_tensor(p + "h_n")) < 1e-12);
            Variable loss = sum(out.output * Variable(reference_tensor(p + "w_out"))) +
                            sum(out.states[0] * Variable(reference_tensor(p + "w_h")));
            if (kind == "lstm") {
                CHECK(max_abs_diff(out.states[1].value(), reference_tensor(p + "c_n")) < 1e-12);
                loss = loss + sum(out.states[1] * Variable(reference_tensor(p + "w_c")));
            }
            CHECK(loss.item() ==
                  doctest::Approx(reference_tensor(p + "loss").item()).epsilon(1e-12));
            loss.backward();
            CHECK(max_abs_diff(x.grad(), reference_tensor(p + "grad.x")) < 1e-12);
            CHECK(max_abs_diff(h0.grad(), reference_tensor(p + "grad.h0")) < 1e-12);
            if (kind == "lstm")
                CHECK(max_abs_diff(c0.grad(), reference_tensor(p + "grad.c0")) < 1e-12);
            for (auto& [n, param] : model->named_parameters()) {
                CAPTURE(n);
                CHECK(max_abs_diff(param.grad(), reference_tensor(p + "grad." + n)) < 1e-12);
            }
        }
    }
}

TEST_CASE("recurrent: padding is invisible — each sequence as if run alone") {
    Generator g(11), gx(12);
    GRU gru(2, 3, {.bidirectional = true, .dtype = float64}, g);
    const std::vector<std::size_t> lengths{7, 3, 5};
    Tensor x = gx.normal({7, 3, 2}, 0, 1, float64);
    // whole batch, padded
    Variable xb(x, true);
    auto batch = gru.forward(xb, {}, lengths);
    Variable loss = weighted(batch.output, 1) + weighted(batch.states[0], 2);
    loss.backward();
    const Tensor batch_grad = xb.grad();
    std::vector<Tensor> batch_param_grads;
    for (auto& p : gru.parameters()) batch_param_grads.push_back(p.grad());
    gru.zero_grad();
    // one sequence at a time: its own length, no padding; the same loss weights restricted to it
    Generator w1(1), w2(2);
    const Tensor wo = w1.normal(batch.output.shape(), 0, 1, float64),
                 wh = w2.normal(batch.states[0].shape(), 0, 1, float64);
    for (std::size_t b = 0; b < 3; ++b) {
        const long L = static_cast<long>(lengths[b]);
        Variable xs(narrow(narrow(Variable(x), 1, static_cast<long>(b), 1), 0, 0, L).value(), true);
        auto alone = gru.forward(xs);
        const Tensor wo_b = narrow(narrow(Variable(wo), 1, b, 1), 0, 0, L).value();
        const Tensor wh_b = narrow(Variable(wh), 1, b, 1).value();
        // outputs and final states equal the batch's rows
        CHECK(max_abs_diff(alone.output.value(),
                           narrow(narrow(batch.output, 1, b, 1), 0, 0, L).value()) < 1e-12);
        CHECK(max_abs_diff(alone.states[0].value(), narrow(batch.states[0], 1, b, 1).value()) <
              1e-12);
        // padded outputs are exactly zero
        if (L < 7)
            CHECK(max_abs_diff(narrow(narrow(batch.output, 1, b, 1), 0, L, 7 - L).value(),
                               Tensor::zeros({static_cast<std::size_t>(7 - L), 1, 6}, float64)) ==
                  0.0);
        (sum(alone.output * Variable(wo_b)) + sum(alone.states[0] * Variable(wh_b))).backward();
        CHECK(max_abs_diff(xs.grad(),
                           narrow(narrow(Variable(batch_grad), 1, b, 1), 0, 0, L).value()) < 1e-12);
    }
    // the per-sequence parameter gradients add up to the batch's
    auto params = gru.parameters();
    for (std::size_t k = 0; k < params.size(); ++k)
        CHECK(max_abs_diff(params[k].grad(), batch_param_grads[k]) < 1e-12);
}

TEST_CASE("recurrent: batch_first, dropout between layers, truncated BPTT") {
    Generator g(13), gx(14);
    RNN rnn(2, 3, {.num_layers = 2, .batch_first = true, .dropout = 0.5, .dtype = float64}, g);
    Tensor x = gx.normal({4, 6, 2}, 0, 1, float64);  // [B, T, F]
    rnn.eval();
    auto a = rnn.forward(Variable(x));
    CHECK(a.output.shape() == Shape{4, 6, 3});
    auto b = rnn.forward(Variable(x));
    CHECK(max_abs_diff(a.output.value(), b.output.value()) == 0.0);  // no dropout in eval
    rnn.train();
    auto c = rnn.forward(Variable(x));
    CHECK(max_abs_diff(a.output.value(), c.output.value()) > 0.0);  // dropout between the layers
    rnn.eval();

    // truncated BPTT: two chunks of 3 steps with the state carried, detached
    Variable first(narrow(Variable(x), 1, 0, 3).value(), true),
        second(narrow(Variable(x), 1, 3, 3).value(), true);
    auto c1 = rnn.forward(first);
    auto c2 = rnn.forward(second, detach(c1.states));
    CHECK(max_abs_diff(c2.output.value(), narrow(a.output, 1, 3, 3).value()) <
          1e-14);  // same as one pass
    sum(c2.output).backward();
    CHECK(second.grad().defined());
    CHECK_FALSE(first.grad().defined());  // the carried state is cut from the first chunk
    current_tape().clear();
}

TEST_CASE("reference: tapegrad checkpoint for PyTorch") {
    // The committed tests/reference/tapegrad_lstm.safetensors was written by this test (with
    // TAPEGRAD_WRITE_REFERENCE set to that path) and loaded into nn.LSTM by
    // make_rnn_reference.py; here we check the file still is what tapegrad writes.
    Generator g(21), gx(22);
    LSTM lstm(3, 4, {.num_layers = 2, .bidirectional = true, .dtype = float64}, g);
    const Tensor x = gx.normal({5, 3, 3}, 0, 1, float64);
    const Tensor out = lstm.forward(Variable(x)).output.value();
    auto tensors = lstm.state_dict();
    tensors.emplace_back("probe.x", x);
    tensors.emplace_back("probe.out", out);
    if (const char* target = std::getenv("TAPEGRAD_WRITE_REFERENCE"))
        save_safetensors(target, tensors);
    TensorFile committed = load_safetensors(std::string(TAPEGRAD_SOURCE_DIR) +
                                            "/tests/reference/tapegrad_lstm.safetensors");
    REQUIRE(committed.tensors.size() == tensors.size());
    for (const auto& [name, t] : tensors) {
        CAPTURE(name);
        REQUIRE(committed.find(name));
        // weights and inputs come from the seeded generator: bit for bit; the output through
        // exp/tanh kernels that may round differently on another instruction set
        CHECK(max_abs_diff(*committed.find(name), t) <= (name == "probe.out" ? 1e-12 : 0.0));
    }
    current_tape().clear();
}

TEST_CASE("reference: a checkpoint of PyTorch's state_dict loads in tapegrad") {
    // rnn_reference.safetensors holds nn.LSTM's state_dict under "lstm.param.<name>".
    std::vector<std::pair<std::string, Tensor>> state;
    for (auto& [n, t] : reference().tensors)
        if (n.rfind("lstm.param.", 0) == 0) state.emplace_back(n.substr(11), t);
    const auto path =
        (tapegrad::test::scratch_dir("layers") / "torch_lstm_state.safetensors").string();
    save_safetensors(path, state);
    Generator g(0);
    LSTM lstm(3, 4, {.num_layers = 2, .bidirectional = true}, g);  // float32: values converted
    CHECK(load(lstm, path).ok());
    CHECK(max_abs_diff(lstm.named_parameters()[0].second.value().to(float64), state[0].second) <
          1e-6);
}

TEST_CASE("modules: Linear, Embedding, Dropout, LayerNorm, Sequential") {
    Generator g(31);
    auto fc1 = std::make_shared<Linear>(3, 4, g, float64);
    CHECK(fc1->weight.shape() == Shape{4, 3});
    for (std::size_t i = 0; i < fc1->weight.numel(); ++i)
        CHECK(std::abs(fc1->weight.value().flat(i)) <=
              1 / std::sqrt(3.0));  // U(-1/sqrt(in), 1/sqrt(in))
    auto net =
        Sequential{fc1, std::make_shared<LayerNorm>(Shape{4}, float64),
                   std::make_shared<Dropout>(0.5, 1), std::make_shared<Linear>(4, 2, g, float64)};
    CHECK(net.named_parameters()[0].first == "0.weight");
    CHECK(net.named_parameters()[2].first == "1.weight");
    CHECK(net.parameter_count() == 4 * 3 + 4 + 4 + 4 + 2 * 4 + 2);
    net.eval();  // dropout off: deterministic, gradcheck-able
    auto f = [&](const std::vector<Variable>& x) { return weighted(net(x[0]), 3); };
    CHECK_GRADCHECK(net, f, random_inputs({{5, 3}}, 32));
    // Linear over [T, B, F] applies to the last axis
    Variable seq(g.normal({6, 5, 3}, 0, 1, float64));
    CHECK((*fc1)(seq).shape() == Shape{6, 5, 4});
    CHECK_THROWS_AS((*fc1)(Variable(g.normal({5, 2}, 0, 1, float64))), ShapeError);

    Embedding emb(10, 3, g, float64);
    Variable rows = emb.forward({4, 1, 4});
    CHECK(rows.shape() == Shape{3, 3});
    sum(rows).backward();
    CHECK(emb.weight.grad().flat(4 * 3) == 2.0);  // row 4 used twice
    CHECK(emb.weight.grad().flat(0) == 0.0);
    CHECK_THROWS_AS(emb.forward({10}), ValueError);
    current_tape().clear();
}

TEST_CASE(
    "recurrent: each step's gate gradients are joined straight into the projection's gradient") {
    // The driver cuts the hoisted projection into the steps' rows; each step's chunk of gate
    // pre-activations is joined in its rows of the projection's gradient (Backward::destination),
    // where sigmoid and tanh wrote the gate gradients, so neither the T chunks nor the
    // projection's split copy anything. The gradients are the same as a loop of steps with no
    // split projection (no destinations at all).
    const std::size_t I = 3, H = 4, T = 5, B = 2;
    Generator g(31), gx(32);
    LSTM lstm(I, H, {.dtype = float64}, g);
    Cell& cell = lstm.cell(0);
    const Variable x(gx.normal({T, B, I}, 0, 1, float64), true);
    auto params = lstm.parameters();
    std::vector<Variable> wanted(params.begin(), params.end());
    wanted.push_back(x);

    const std::size_t joined_before = detail::splits_joined_in_place(),
                      read_before = detail::products_read_in_place();
    const auto driven = grad(weighted(lstm.forward(x).output, 1), wanted);
    CHECK(detail::splits_joined_in_place() - joined_before == T + 1);
    CHECK(detail::products_read_in_place() - read_before == 1);  // W_hh's products read it in place

    State s{constant(Tensor::zeros({B, H}, float64)), constant(Tensor::zeros({B, H}, float64))};
    std::vector<Variable> hs;
    for (std::size_t t = 0; t < T; ++t) {
        const Variable xt = reshape(narrow(x, 0, static_cast<long>(t), 1), Shape{B, I});
        s = cell.step(cell.project_input(xt), s);
        hs.push_back(s[0]);
    }
    const auto alone = grad(weighted(stack(hs, 0), 1), wanted);
    for (std::size_t i = 0; i < wanted.size(); ++i) {
        CAPTURE(i);
        CHECK(max_abs_diff(driven[i].value(), alone[i].value()) < 1e-13);
    }
}
