// silu and gelu (both forms): PyTorch's values (torch float64), gradients at known points,
// finite values and gradients at ±1e30 and ±Inf in float32 and float64, NaN propagated, and
// second derivatives under create_graph.
#include <cmath>
#include <limits>
#include <vector>

#include <doctest/doctest.h>

#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

namespace {

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

Variable param(std::initializer_list<double> values, DType dtype = float64) {
    return Variable(Tensor::from(values, {values.size()}, dtype), true);
}

std::vector<double> grad_of(const Variable& y, const Variable& x) {
    return tapegrad::grad(y, {x})[0].value().to_vector();
}

void check_close(const std::vector<double>& got, const std::vector<double>& want,
                 double tol = 1e-14) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        if (want[i] == 0) CHECK(got[i] == 0.0);  // Approx with scale 0 would fail 0 == 0
        else CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol).scale(0));
    }
}

double sigmoid_of(double x) { return 1 / (1 + std::exp(-x)); }
double phi(double x) { return std::exp(-x * x / 2) / std::sqrt(2 * M_PI); }
double cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

}  // namespace

TEST_CASE("silu and gelu: PyTorch values and gradients") {
    Variable x = param({1, -3, 0, 2.5});
    check_close(silu(x).value().to_vector(),
                {0.7310585786300049, -3 * sigmoid_of(-3), 0, 2.5 * sigmoid_of(2.5)});
    check_close(gelu(x).value().to_vector(), {0.8413447460685429, -3 * cdf(-3), 0, 2.5 * cdf(2.5)},
                1e-12);
    CHECK(gelu(x).value().flat(1) == doctest::Approx(-0.0040496).epsilon(1e-4));
    const double k = std::sqrt(2 / M_PI);
    auto tanh_form = [k](double v) {
        return 0.5 * v * (1 + std::tanh(k * (v + 0.044715 * v * v * v)));
    };
    check_close(gelu(x, true).value().to_vector(),
                {0.8411919906082768, tanh_form(-3), 0, tanh_form(2.5)}, 1e-12);

    // silu' = s (1 + x (1 - s)); gelu' = Φ + x φ; the tanh form's by central differences
    std::vector<double> ds, dg, dt;
    for (double v : {1.0, -3.0, 0.0, 2.5}) {
        const double s = sigmoid_of(v);
        ds.push_back(s * (1 + v * (1 - s)));
        dg.push_back(cdf(v) + v * phi(v));
        const double h = 1e-6;
        dt.push_back((tanh_form(v + h) - tanh_form(v - h)) / (2 * h));
    }
    check_close(grad_of(sum(silu(x)), x), ds);
    check_close(grad_of(sum(gelu(x)), x), dg);
    check_close(grad_of(sum(gelu(x, true)), x), dt, 1e-8);
    CHECK(grad_of(sum(gelu(x)), x)[2] == 0.5);  // Φ(0)
}

TEST_CASE("silu and gelu: ±40, ±1e30 and ±Inf stay finite; NaN propagates") {
    for (DType dtype : {float64, float32}) {
        CAPTURE(name(dtype));
        Variable x = param({40, -40, 1e30, -1e30, kInf, -kInf, kNaN}, dtype);
        // values: x at the positive end, 0 (-0) at the negative end, as the limits
        for (const bool tanh_form : {false, true}) {
            for (const auto& y : {silu(x), gelu(x, tanh_form)}) {
                const auto v = y.value().to_vector();
                CHECK(v[0] == 40);
                CHECK(std::abs(v[1]) < 1e-15);
                CHECK(v[2] == doctest::Approx(1e30));
                CHECK(v[3] == 0);
                CHECK(v[4] == kInf);
                CHECK(v[5] == 0);
                CHECK(std::isnan(v[6]));
            }
            // gradients: 1 at the positive end, 0 at the negative end, NaN for NaN
            for (const auto& g : {grad_of(sum(silu(x)), x), grad_of(sum(gelu(x, tanh_form)), x)}) {
                CHECK(g[0] == doctest::Approx(1));
                CHECK(std::abs(g[1]) < 1e-14);
                CHECK(g[2] == 1);
                CHECK(g[3] == 0);
                CHECK(g[4] == 1);
                CHECK(g[5] == 0);
                CHECK(std::isnan(g[6]));
            }
        }
        // silu(-40) = -40 sigmoid(-40), tiny but exact
        if (dtype == float64)
            CHECK(silu(x).value().flat(1) == doctest::Approx(-40 * sigmoid_of(-40)).scale(0));
    }
}

TEST_CASE("silu and gelu: second derivatives under create_graph, finite in the tails") {
    Variable x = param({1, -3, 0.5, 1e30, -1e30, kInf, -kInf});
    for (int form = 0; form < 3; ++form) {
        CAPTURE(form);
        auto f = [form](const Variable& v) { return form == 0 ? silu(v) : gelu(v, form == 2); };
        auto g = tapegrad::grad(sum(f(x)), {x}, {}, {.create_graph = true})[0];
        const auto gg = grad_of(sum(g), x);
        for (std::size_t i = 0; i < gg.size(); ++i) {
            CAPTURE(i);
            CHECK(std::isfinite(gg[i]));
        }
        // central differences of the first derivative at 1, -3, 0.5
        for (std::size_t i = 0; i < 3; ++i) {
            const double v = x.value().flat(i), h = 1e-5;
            Variable p = param({v + h, v - h});
            const auto d = grad_of(sum(f(p)), p);
            CHECK(gg[i] == doctest::Approx((d[0] - d[1]) / (2 * h)).epsilon(1e-6));
        }
        for (std::size_t i = 3; i < gg.size(); ++i) CHECK(gg[i] == 0);
    }
}
