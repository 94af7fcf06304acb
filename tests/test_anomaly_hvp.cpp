// Anomaly mode names the op that first produced NaN/Inf; gradients of gradients give exact
// Hessian-vector products.
#include <doctest/doctest.h>

#include <tapegrad/tapegrad.hpp>
#include "tests/test_support.hpp"

using namespace tapegrad;
using tapegrad::test::message_of;

namespace {}  // namespace

TEST_CASE("anomaly: off by default, a NaN passes silently") {
    CHECK_FALSE(anomaly_enabled());
    Variable x(Tensor::from({0.5, 1.0}, {2}, float64), true);
    Variable z = log(tanh(x) * 2.0 - 3.0);  // log of a negative number
    CHECK(std::isnan(z.value().flat(0)));
    current_tape().clear();
}

TEST_CASE("anomaly: names the op that produced a NaN deep in a composed expression") {
    AnomalyGuard anomaly;
    Variable x(Tensor::from({0.5, 1.0}, {2}, float64), true);
    Variable h = sigmoid(
        matmul(reshape(x, std::vector<long>{1, 2}), Variable(Tensor::ones({2, 2}, float64))));
    const auto msg = message_of<AnomalyError>([&] { log(h * 2.0 - 3.0); });
    CHECK(msg.find("log: produced NaN or Inf in its forward result [1,2]") == 0);
    CHECK(msg.find("test_anomaly_hvp.cpp:") != std::string::npos);  // the call site
    current_tape().clear();
}

TEST_CASE("anomaly: names the op whose backward produced Inf") {
    // y = 1/x is finite at x = 1e-30 in float32, but dy/dx = -1/x^2 overflows.
    Variable x(Tensor::from({1e-30}, {1}, float32), true);
    Variable y = sum(div(constant(1.0, float32), x));
    {
        AnomalyGuard anomaly;
        const auto msg = message_of<AnomalyError>([&] { y.backward(); });
        CHECK(msg.find("div: backward produced NaN or Inf") == 0);
        CHECK(msg.find("test_anomaly_hvp.cpp:") != std::string::npos);  // where the div was called
    }
    current_tape().clear();
}

TEST_CASE("anomaly: the guard restores the previous mode") {
    {
        AnomalyGuard on;
        CHECK(anomaly_enabled());
        {
            AnomalyGuard off(false);
            CHECK_FALSE(anomaly_enabled());
        }
        CHECK(anomaly_enabled());
    }
    CHECK_FALSE(anomaly_enabled());
}

TEST_CASE("hessian-vector product of a small MLP matches finite differences of gradients") {
    Generator gen(11);
    const Variable x(gen.normal({6, 3}, 0, 1, float64));
    const Variable target(gen.normal({6, 2}, 0, 1, float64));
    const Tensor w1_0 = gen.normal({3, 4}, 0, 0.5, float64),
                 w2_0 = gen.normal({4, 2}, 0, 0.5, float64);
    const Tensor v1 = gen.normal({3, 4}, 0, 1, float64), v2 = gen.normal({4, 2}, 0, 1, float64);

    auto loss_of = [&](const Variable& w1, const Variable& w2) {
        Variable d = matmul(tanh(matmul(x, w1)), w2) - target;
        return mean(d * d);
    };
    auto gradients_at = [&](const Tensor& a, const Tensor& b) {
        Variable w1(a, true), w2(b, true);
        auto g = grad(loss_of(w1, w2), {w1, w2});
        return std::pair{g[0].value(), g[1].value()};
    };

    // Hv = d/dw <grad L(w), v>, with the inner gradient recorded (create_graph).
    Variable w1(w1_0, true), w2(w2_0, true);
    auto g = grad(loss_of(w1, w2), {w1, w2}, {}, {.create_graph = true});
    Variable gv = sum(g[0] * Variable(v1)) + sum(g[1] * Variable(v2));
    auto hv = grad(gv, {w1, w2});

    // Finite differences: (grad L(w + e v) - grad L(w - e v)) / 2e
    const double e = 1e-5;
    auto shifted = [&](const Tensor& w, const Tensor& v, double s) {
        return Tensor(xt::xarray<double>(w.xt<double>() + s * v.xt<double>()));
    };
    auto [p1, p2] = gradients_at(shifted(w1_0, v1, e), shifted(w2_0, v2, e));
    auto [m1, m2] = gradients_at(shifted(w1_0, v1, -e), shifted(w2_0, v2, -e));
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < hv[0].numel(); ++i) {
        const double fd = (p1.flat(i) - m1.flat(i)) / (2 * e);
        worst = std::max(worst, std::abs(hv[0].value().flat(i) - fd));
        scale = std::max(scale, std::abs(fd));
    }
    for (std::size_t i = 0; i < hv[1].numel(); ++i) {
        const double fd = (p2.flat(i) - m2.flat(i)) / (2 * e);
        worst = std::max(worst, std::abs(hv[1].value().flat(i) - fd));
        scale = std::max(scale, std::abs(fd));
    }
    CHECK(scale > 1e-3);  // a real, non-zero Hessian-vector product
    CHECK(worst < 1e-7 * std::max(1.0, scale));
}
