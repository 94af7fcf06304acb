// Seeing gradients: retain_grad, gradient hooks, StateGradients and the graph read back from
// the tape (graph_of, GraphScope).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include <tapegrad/core/graph.hpp>
#include <tapegrad/tapegrad.hpp>
#include "tests/test_support.hpp"

using namespace tapegrad;
using tapegrad::test::message_of;

namespace {
Variable leaf(const Tensor& t) { return Variable(t, true); }

Tensor vec(std::initializer_list<double> values) {
    return Tensor::from(std::vector<double>(values), {values.size()}, float64);
}

// d f / d x by central differences, f: R^n -> R, in float64.
Tensor numeric_grad(const std::function<double(const Tensor&)>& f, const Tensor& x) {
    Tensor g = Tensor::zeros(x.shape(), float64);
    const double eps = 1e-6;
    for (std::size_t i = 0; i < x.numel(); ++i) {
        Tensor up = x.clone(), down = x.clone();
        up.set_flat(i, x.flat(i) + eps);
        down.set_flat(i, x.flat(i) - eps);
        g.set_flat(i, (f(up) - f(down)) / (2 * eps));
    }
    return g;
}
}  // namespace

TEST_CASE("retain_grad keeps a recorded variable's gradient, accumulating as a leaf's") {
    Variable x = leaf(vec({3.0}));
    Variable y = x * x;  // 9
    y.retain_grad();
    CHECK(y.retains_grad());
    Variable z = y * 2.0 + y * y;  // dz/dy = 2 + 2y = 20, dz/dx = 20 * 2x = 120
    z.backward({}, {.retain_graph = true});
    REQUIRE(y.grad().defined());
    CHECK(y.grad().item() == doctest::Approx(20.0));
    CHECK(x.grad().item() == doctest::Approx(120.0));
    z.backward();
    CHECK(y.grad().item() == doctest::Approx(40.0));  // accumulated over the two passes
    y.zero_grad();
    CHECK_FALSE(y.grad().defined());

    // Without retain_grad a recorded variable keeps nothing; on a leaf retain_grad is a no-op.
    Variable a = leaf(vec({1.0, 2.0}));
    Variable b = tanh(a);
    sum(b * b).backward();
    CHECK_FALSE(b.grad().defined());
    CHECK_FALSE(a.retain_grad().retains_grad());
}

TEST_CASE("retain_grad agrees with grad() and with finite differences") {
    Generator gen(3);
    const Tensor x0 = gen.normal({2, 3}, 0, 1, float64), w0 = gen.normal({3, 4}, 0, 1, float64);
    // z = Σ exp(h) h at h = tanh(x W)
    auto tail = [](const Variable& h) { return sum(exp(h) * h); };
    Variable x = leaf(x0), w = leaf(w0);
    Variable h = tanh(matmul(x, w));
    h.retain_grad();
    Variable z = tail(h);
    const auto dh = grad(z, {h}, {}, {.retain_graph = true});
    z.backward();
    REQUIRE(h.grad().defined());
    CHECK(max_abs_diff(h.grad(), dh[0].value()) == 0.0);
    const Tensor numeric =
        numeric_grad([&](const Tensor& hv) { return tail(Variable(hv)).item(); }, h.value());
    CHECK(max_abs_diff(h.grad(), numeric) < 1e-8);
}

TEST_CASE("a hook that returns a gradient replaces it; what flows on is the hooked gradient") {
    Generator gen(5);
    const Tensor x0 = gen.normal({3}, 0, 1, float64);
    auto f = [](const Variable& x) {
        Variable y = exp(x);
        return std::pair{y, sum(y * y)};
    };
    Variable x = leaf(x0);
    auto [y, z] = f(x);
    y.register_hook([](const Variable& g) { return g * 3.0; });
    z.backward();
    // z = Σ exp(2x): dz/dx = 2 exp(2x), tripled at y
    const Tensor numeric =
        numeric_grad([&](const Tensor& xv) { return f(Variable(xv)).second.item(); }, x0);
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(x.grad().flat(i) == doctest::Approx(3 * numeric.flat(i)).epsilon(1e-7));
        CHECK(x.grad().flat(i) == doctest::Approx(6 * std::exp(2 * x0.flat(i))));
    }
}

TEST_CASE("hooks compose in registration order and run once per backward") {
    Variable x = leaf(vec({2.0}));
    Variable y = x * 1.0;
    int calls = 0;
    std::vector<double> seen;
    y.register_hook([&](const Variable& g) {
        ++calls;
        seen.push_back(g.item());
        return g * 2.0;
    });
    y.register_hook([&](const Variable& g) {
        seen.push_back(g.item());
        return g + 1.0;
    });
    // y reaches z along two paths: the hook sees their sum once
    Variable z = y * 3.0 + y * 4.0;
    z.backward({}, {.retain_graph = true});
    CHECK(calls == 1);
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == 7.0);           // the complete gradient
    CHECK(seen[1] == 14.0);          // what the first hook returned
    CHECK(x.grad().item() == 15.0);  // (7 * 2) + 1
    z.backward();
    CHECK(calls == 2);
    CHECK(x.grad().item() == 30.0);
}

TEST_CASE("a removed hook is not called; an observing hook changes nothing") {
    Variable x = leaf(vec({1.0, -2.0}));
    Variable y = x * x;
    int calls = 0;
    HookHandle handle = y.register_hook([&](const Variable& g) {
        ++calls;
        return g * 100.0;
    });
    double seen_norm = 0;
    y.register_hook([&](const Variable& g) { seen_norm = norm_of(g.value()); });
    handle.remove();
    handle.remove();  // twice is harmless
    sum(y).backward();
    CHECK(calls == 0);
    CHECK(seen_norm == doctest::Approx(std::sqrt(2.0)));
    CHECK(x.grad().flat(0) == 2.0);
    CHECK(x.grad().flat(1) == -4.0);
}

TEST_CASE("a leaf's hooks run once on its whole gradient, before it is added to grad()") {
    Variable w = leaf(vec({1.0, 2.0}));
    w.set_grad(vec({10.0, 10.0}));
    int calls = 0;
    Tensor seen;
    w.register_hook([&](const Variable& g) {
        ++calls;
        seen = g.value();
        return g * -1.0;
    });
    Variable z = sum(w * w) + sum(w * 3.0);  // dz/dw = 2w + 3, w used three times
    z.backward();
    CHECK(calls == 1);
    CHECK(seen.flat(0) == 5.0);
    CHECK(seen.flat(1) == 7.0);
    CHECK(w.grad().flat(0) == 5.0);  // 10 - 5
    CHECK(w.grad().flat(1) == 3.0);  // 10 - 7
    // grad() (torch.autograd.grad) runs the hooks too, and leaves grad() alone
    const auto g = grad(sum(w * w), {w});
    CHECK(calls == 2);
    CHECK(g[0].value().flat(1) == -4.0);
    CHECK(w.grad().flat(1) == 3.0);
}

TEST_CASE("a recorded variable's hooks are released with its graph") {
    auto token = std::make_shared<int>(0);
    std::weak_ptr<int> watch = token;
    Variable x = leaf(vec({1.0}));
    Variable y = x * 2.0;
    y.register_hook([token](const Variable&) {});
    token.reset();
    Variable z = y * y;
    z.backward({}, {.retain_graph = true});
    CHECK_FALSE(watch.expired());  // the graph is kept, and with it the hook
    z.backward();
    CHECK(watch.expired());          // y is still held here, its hooks are not
    CHECK(x.grad().item() == 16.0);  // dz/dx = 8, twice
}

TEST_CASE("hooks on the pieces of one op's several results") {
    Generator gen(7);
    const Tensor x0 = gen.normal({2, 6}, 0, 1, float64);
    Variable x = leaf(x0);
    auto parts = chunk(x, 3, 1);  // one entry, three results
    parts[1].register_hook([](const Variable& g) { return g * 5.0; });
    parts[2].retain_grad();
    sum(parts[0] * parts[0] + parts[1] * 2.0 + parts[2] * 3.0).backward();
    for (std::size_t r = 0; r < 2; ++r) {
        CHECK(x.grad().flat(r * 6 + 0) == doctest::Approx(2 * x0.flat(r * 6 + 0)));
        CHECK(x.grad().flat(r * 6 + 2) == 10.0);
        CHECK(x.grad().flat(r * 6 + 4) == 3.0);
    }
    REQUIRE(parts[2].grad().defined());
    CHECK(parts[2].grad().flat(0) == 3.0);
}

TEST_CASE("hooks under create_graph are recorded: the hooked gradient is differentiable") {
    Variable x = leaf(vec({0.5, -1.5}));
    Variable y = x * x * x;
    HookHandle h = y.register_hook([&](const Variable& g) { return g * y; });  // times x^3
    auto g = grad(sum(y), {x}, {}, {.create_graph = true});
    // g = y * 3x^2 = 3x^5, and d(Σ g)/dx = 15 x^4
    CHECK(g[0].value().flat(0) == doctest::Approx(3 * std::pow(0.5, 5)));
    h.remove();  // else the second backward, which reaches y again, runs it again
    sum(g[0]).backward();
    CHECK(x.grad().flat(0) == doctest::Approx(15 * std::pow(0.5, 4)));
    CHECK(x.grad().flat(1) == doctest::Approx(15 * std::pow(-1.5, 4)));
}

TEST_CASE("bad hooks are reported") {
    Variable x = leaf(vec({1.0, 2.0}));
    Variable y = name(x * 2.0, "doubled");
    y.register_hook([](const Variable&) { return Variable(Tensor::zeros({3}, float64)); });
    const std::string msg = message_of([&] { sum(y).backward(); });
    CHECK(msg.find("hook") != std::string::npos);
    CHECK(msg.find("'doubled'") != std::string::npos);
    CHECK(msg.find("[2]") != std::string::npos);
    CHECK(msg.find("[3]") != std::string::npos);
    Variable c(vec({1.0}));
    CHECK(message_of([&] {
              c.register_hook([](const Variable& g) { return g; });
          }).find("does not require grad") != std::string::npos);
}

TEST_CASE("StateGradients gives ‖∂L/∂h_t‖ and ‖∂L/∂c_t‖ of every step") {
    // The gradient reaching h_t equals the gradient of the same loss w.r.t. the initial h of a
    // run over the steps after t, started from step t's state. c_t's also flows through
    // h_t = o_t tanh(c_t), within step t: ∂L/∂c_t = ∂L/∂c0 + ∂L/∂h0 o_t (1 - tanh²(c_t)).
    Generator gen(11);
    const std::size_t T = 6, B = 3, I = 2, H = 4;
    LSTM lstm(I, H, {.dtype = float64}, gen);
    const Variable x(gen.normal({T, B, I}, 0, 1, float64));
    auto loss_of = [](const RecurrentOutput& out) {
        return sum(out.states[0] * out.states[0]) + sum(tanh(out.states[1]) * out.states[1]);
    };
    StateGradients watch(lstm);
    loss_of(lstm.forward(x)).backward();
    const auto dh = watch.norms(0), dc = watch.norms(0, 0, 1);
    REQUIRE(dh.size() == T);
    for (std::size_t t = 0; t + 1 < T; ++t) {
        RecurrentOutput prefix;
        {
            NoGradGuard no_grad;
            prefix = lstm.forward(narrow(x, 0, 0, static_cast<long>(t + 1)));
        }
        Variable h0(prefix.states[0].value(), true), c0(prefix.states[1].value(), true);
        const auto rest = narrow(x, 0, static_cast<long>(t + 1), static_cast<long>(T - t - 1));
        loss_of(lstm.forward(rest, {h0, c0})).backward();
        CHECK(dh[t] == doctest::Approx(norm_of(h0.grad())).epsilon(1e-10));
        const Tensor& h = prefix.states[0].value();
        const Tensor& c = prefix.states[1].value();
        Tensor total = c0.grad().clone();
        for (std::size_t k = 0; k < total.numel(); ++k) {
            const double th = std::tanh(c.flat(k)), o = h.flat(k) / th;
            total.set_flat(k, total.flat(k) + h0.grad().flat(k) * o * (1 - th * th));
        }
        CHECK(dc[t] == doctest::Approx(norm_of(total)).epsilon(1e-8));
    }
    CHECK(dh[T - 1] > 0);
    CHECK_THROWS_AS(watch.norms(1), ValueError);
    CHECK_THROWS_AS(watch.norms(0, 0, 2), ValueError);
    CHECK_THROWS_AS(StateGradients{lstm}, ValueError);  // one watch at a time
}

TEST_CASE("StateGradients indexes a bidirectional layer's steps by time") {
    Generator gen(12);
    const std::size_t T = 5;
    GRU gru(2, 3, {.bidirectional = true, .dtype = float64}, gen);
    StateGradients watch(gru);
    const auto out = gru.forward(Variable(gen.normal({T, 2, 2}, 0, 1, float64)));
    // only the output at t = 0 counts: the forward direction's gradient stops there, the
    // reverse one's starts there and runs back to t = T - 1
    sum(narrow(out.output, 0, 0, 1)).backward();
    const auto fwd = watch.norms(0, 0), rev = watch.norms(0, 1);
    CHECK(fwd[0] > 0);
    for (std::size_t t = 1; t < T; ++t) CHECK(fwd[t] == 0.0);
    for (std::size_t t = 0; t < T; ++t) CHECK(rev[t] > 0);
}

TEST_CASE("graph_of reads back ops, leaves and scopes; names label variables") {
    Variable x(vec({1.0, 2.0})), w = leaf(vec({0.5, 0.5}));
    w.set_name("w");
    Variable y;
    {
        const GraphScope module("Cell");
        const GraphScope step("", 4);
        y = name(tanh(x * w), "gate");
    }
    Variable z = sum(y);
    const Graph g = graph_of(z);
    REQUIRE(g.ops.size() == 3);
    CHECK(g.ops[0].op == "mul");
    CHECK(g.ops[1].op == "tanh");
    CHECK(g.ops[1].results[0].name == "gate");
    CHECK(g.ops[2].op == "sum");
    CHECK(g.scopes[g.ops[1].scope].path == "Cell");
    CHECK(g.scopes[g.ops[1].scope].step == 4);
    CHECK(g.ops[2].scope == 0);
    REQUIRE(g.leaves.size() == 2);
    CHECK(g.ops[0].inputs[0].is_leaf);
    CHECK(g.leaves[g.ops[0].inputs[1].index].value.name == "w");
    CHECK_FALSE(g.ops[1].inputs[0].is_leaf);
    CHECK(g.ops[1].inputs[0].index == 0);
    CHECK(g.root.index == 2);

    z.backward({}, {.retain_graph = true, .keep_grad_norms = true});
    const Graph after = graph_of(z);
    CHECK(after.ops[2].grad_norm == doctest::Approx(1.0));
    CHECK(after.ops[1].grad_norm == doctest::Approx(std::sqrt(2.0)));
    z.backward();
    CHECK(message_of([&] { graph_of(z); }).find("retain_graph") != std::string::npos);
}
