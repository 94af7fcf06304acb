// Edge cases of ops/elementwise and the reductions max, min, logsumexp, var:
//  - bad inputs throw the right tapegrad error, and the message names the op and the shapes;
//  - the gradient at kinks and ties is PyTorch's (expected numbers from torch 1.13);
//  - large and infinite inputs do not overflow; NaN propagates;
//  - the vectorised reduction kernels agree with a plain loop on every axis combination.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include <doctest/doctest.h>

#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

namespace {

// The message of the E thrown by f, or a note that none was.
template <class E>
std::string thrown(const std::function<void()>& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("(another exception: ") + e.what() + ")";
    }
    return "(no exception)";
}

bool has(const std::string& msg, const std::string& part) {
    return msg.find(part) != std::string::npos;
}

Variable param(std::initializer_list<double> values, const Shape& shape, DType dtype = float64) {
    return Variable(Tensor::from(values, shape, dtype), true);
}

std::vector<double> grad_of(const Variable& y, const Variable& x) {
    auto g = tapegrad::grad(y, {x});
    return g[0].value().to_vector();
}

void check_close(const std::vector<double>& got, const std::vector<double>& want,
                 double tol = 1e-12) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol).scale(1.0));
    }
}

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

// ---- bad inputs ----

TEST_CASE("elementwise errors: pow") {
    Variable a(Tensor::ones({2, 3}, float32)), b(Tensor::ones({2, 3}, float64));
    auto msg = thrown<DTypeError>([&] { pow(a, b); });
    CHECK(msg.find("pow: dtypes differ") == 0);
    CHECK(has(msg, "[2,3] float32"));
    CHECK(has(msg, "[2,3] float64"));
    msg = thrown<ShapeError>([&] { pow(b, Variable(Tensor::ones({4}, float64))); });
    CHECK(msg.find("pow: shapes [2,3] and [4] cannot be broadcast") == 0);
    CHECK(has(msg, "test_op_errors_elementwise.cpp:"));  // the call site
    msg = thrown<ValueError>([&] { pow(Variable(), 2.0); });
    CHECK(msg.find("pow: an input variable is undefined") == 0);
}

TEST_CASE("elementwise errors: unary ops reject undefined inputs and bad parameters") {
    CHECK(thrown<ValueError>([] { sqrt(Variable()); }).find("sqrt: ") == 0);
    CHECK(thrown<ValueError>([] { abs(Variable()); }).find("abs: ") == 0);
    CHECK(thrown<ValueError>([] { log1p(Variable()); }).find("log1p: ") == 0);
    Variable x(Tensor::ones({2, 3}, float32));
    auto msg = thrown<ValueError>([&] { leaky_relu(x, kNaN); });
    CHECK(msg.find("leaky_relu: negative_slope must be finite") == 0);
    CHECK(has(msg, "[2,3] float32"));
    msg = thrown<ValueError>([&] { softplus(x, 0.0); });
    CHECK(msg.find("softplus: needs a finite beta > 0") == 0);
    CHECK(has(msg, "beta 0"));
    CHECK(has(msg, "[2,3] float32"));
    CHECK(has(thrown<ValueError>([&] { softplus(x, -1.0); }), "beta -1"));
    CHECK(has(thrown<ValueError>([&] { softplus(x, 1.0, kNaN); }), "threshold nan"));
}

TEST_CASE("elementwise errors: clamp") {
    Variable x(Tensor::ones({2, 3}, float64));
    auto msg = thrown<ValueError>([&] { clamp(x, 2.0, 1.0); });
    CHECK(msg.find("clamp: bounds must satisfy min <= max, got min 2 and max 1") == 0);
    CHECK(has(msg, "[2,3] float64"));
    msg = thrown<ValueError>([&] { clamp(x, std::nullopt, std::nullopt); });
    CHECK(msg.find("clamp: needs a min or a max bound") == 0);
    CHECK(has(msg, "[2,3]"));
    CHECK(has(thrown<ValueError>([&] { clamp(x, kNaN, 1.0); }), "min nan"));
    CHECK_NOTHROW(clamp(x, 1.0, 1.0));
}

TEST_CASE("elementwise errors: maximum and minimum") {
    Variable a(Tensor::ones({2, 3}, float32)), b(Tensor::ones({2, 3}, float64));
    auto msg = thrown<DTypeError>([&] { maximum(a, b); });
    CHECK(msg.find("maximum: dtypes differ") == 0);
    CHECK(has(msg, "float32"));
    msg = thrown<ShapeError>([&] { minimum(b, Variable(Tensor::ones({3, 2}, float64))); });
    CHECK(msg.find("minimum: shapes [2,3] and [3,2] cannot be broadcast") == 0);
}

TEST_CASE("elementwise errors: where") {
    Variable a(Tensor::ones({2, 3}, float64)), b(Tensor::zeros({2, 3}, float64));
    auto msg = thrown<ShapeError>([&] { where(Tensor::ones({4}, float64), a, b); });
    CHECK(msg.find("where: mask [4], a [2,3] and b [2,3] cannot be broadcast together") == 0);
    msg = thrown<ShapeError>([&] {
        where(Tensor::ones({2, 3}, float64), a, Variable(Tensor::zeros({2}, float64)));
    });
    CHECK(msg.find("where: mask [2,3], a [2,3] and b [2] cannot be broadcast together") == 0);
    msg = thrown<DTypeError>([&] {
        where(Tensor::ones({2, 3}, float64), a, Variable(Tensor::zeros({2, 3}, float32)));
    });
    CHECK(msg.find("where: dtypes differ") == 0);
    CHECK(thrown<ValueError>([&] { where(Tensor(), a, b); }).find("where: the mask is undefined") ==
          0);
}

TEST_CASE("elementwise errors: lerp") {
    Variable a(Tensor::ones({2, 3}, float64)), b(Tensor::zeros({2, 3}, float64));
    auto msg = thrown<ShapeError>([&] { lerp(a, b, Variable(Tensor::ones({4}, float64))); });
    CHECK(msg.find("lerp: start [2,3], end [2,3] and weight [4] cannot be broadcast together") ==
          0);
    msg = thrown<DTypeError>([&] { lerp(a, b, Variable(Tensor::ones({2, 3}, float32))); });
    CHECK(msg.find("lerp: dtypes differ") == 0);
    CHECK(has(msg, "float32"));
    CHECK(thrown<ValueError>([&] {
              lerp(a, Variable(), b);
          }).find("lerp: an input variable is undefined") == 0);
}

TEST_CASE("reduction errors: axes, empty groups, degrees of freedom") {
    Variable x(Tensor::ones({2, 3}, float64));
    for (auto* op : {+[](const Variable& v) { return max(v, {2}); },
                     +[](const Variable& v) { return min(v, {-3}); },
                     +[](const Variable& v) { return logsumexp(v, {5}); },
                     +[](const Variable& v) { return var(v, {2}); }}) {
        auto msg = thrown<ShapeError>([&] { op(x); });
        CHECK(has(msg, "is out of range for a tensor of rank 2"));
    }
    CHECK(thrown<ShapeError>([&] { max(x, {2}); }).find("max: axis 2") == 0);
    CHECK(thrown<ShapeError>([&] { min(x, {-3}); }).find("min: axis -3") == 0);
    CHECK(thrown<ShapeError>([&] { logsumexp(x, {5}); }).find("logsumexp: axis 5") == 0);
    auto msg = thrown<ShapeError>([&] { var(x, {1, -1}); });
    CHECK(msg.find("var: an axis is repeated") == 0);
    CHECK(has(msg, "[2,3]"));
    Variable empty(Tensor::zeros({2, 0}, float64));
    msg = thrown<ShapeError>([&] { max(empty, {1}); });
    CHECK(msg.find("max: reduces [2,0] over an empty axis") == 0);
    CHECK(thrown<ShapeError>([&] { min(empty); }).find("min: reduces [2,0]") == 0);
    CHECK(max(empty, {0}).shape() == Shape{0});  // the empty axis is not reduced
    msg = thrown<ValueError>([&] { var(x, {0}, 2); });
    CHECK(msg.find("var: 2 elements per group with correction 2 leave no degrees of freedom") == 0);
    CHECK(has(msg, "[2,3] float64"));
    msg = thrown<ValueError>([] { var(Variable(Tensor::scalar(1, float64))); });
    CHECK(msg.find("var: 1 elements per group") == 0);
}

// ---- kinks, ties, special values: PyTorch's numbers ----

TEST_CASE("elementwise kinks: abs, leaky_relu, clamp take PyTorch's subgradient") {
    Variable x = param({-1, 0, 2}, {3});
    // torch: abs -> [-1, 0, 1]; leaky_relu(0.1) -> [0.1, 0.1, 1]; clamp(0, 2) -> [0, 1, 1]
    check_close(grad_of(sum(abs(x)), x), {-1, 0, 1});
    check_close(grad_of(sum(leaky_relu(x, 0.1)), x), {0.1, 0.1, 1});
    check_close(grad_of(sum(clamp(x, 0.0, 2.0)), x), {0, 1, 1});
    check_close(grad_of(sum(clamp(x, 0.0, std::nullopt)), x), {0, 1, 1});
    check_close(leaky_relu(x, 0.1).value().to_vector(), {-0.1, 0, 2});
    check_close(clamp(x, -0.5, 1.5).value().to_vector(), {-0.5, 0, 1.5});
}

TEST_CASE("maximum and minimum split the gradient of a tie half and half") {
    Variable a = param({1, 2, 3}, {3}), b = param({1, 1, 4}, {3});
    auto g = tapegrad::grad(sum(maximum(a, b)), {a, b});
    // torch: [0.5, 1, 0] and [0.5, 0, 1]
    check_close(g[0].value().to_vector(), {0.5, 1, 0});
    check_close(g[1].value().to_vector(), {0.5, 0, 1});
    g = tapegrad::grad(sum(minimum(a, b)), {a, b});
    check_close(g[0].value().to_vector(), {0.5, 0, 1});
    check_close(g[1].value().to_vector(), {0.5, 1, 0});
    // broadcast: b's one element gets the sum of its shares
    Variable c = param({2}, {1});
    g = tapegrad::grad(sum(maximum(a, c)), {a, c});
    check_close(g[0].value().to_vector(), {0, 0.5, 1});
    check_close(g[1].value().to_vector(), {1.5});
}

TEST_CASE("max and min reductions share the gradient evenly among tied elements") {
    Variable x = param({3, 1, 3, 0, 2, 2}, {2, 3});
    // torch: x.max() -> [[.5, 0, .5], [0, 0, 0]]; x.amax(1) -> [[.5, 0, .5], [0, .5, .5]];
    // x.amin(1) -> [[0, 1, 0], [1, 0, 0]]
    check_close(grad_of(max(x), x), {0.5, 0, 0.5, 0, 0, 0});
    check_close(grad_of(sum(max(x, {1})), x), {0.5, 0, 0.5, 0, 0.5, 0.5});
    check_close(grad_of(sum(min(x, {1})), x), {0, 1, 0, 1, 0, 0});
    check_close(grad_of(sum(max(x, {0}, true)), x), {1, 0, 1, 0, 1, 0});
    CHECK(max(x, {1}).value().to_vector() == std::vector<double>{3, 2});
    CHECK(min(x).item() == 0);
    CHECK(max(x, {-1}, true).shape() == Shape{2, 1});
}

TEST_CASE("pow: special exponents, zero base and the exponent gradient") {
    Variable x = param({0, 1, 2}, {3}), p = param({2}, {});
    auto g = tapegrad::grad(sum(pow(x, p)), {x, p});
    // torch: d/dx [0, 2, 4]; d/dp = 1 log 1 + 4 log 2 (the x = 0 term is 0)
    check_close(g[0].value().to_vector(), {0, 2, 4});
    CHECK(g[1].item() == doctest::Approx(4 * std::log(2.0)));
    // x^0 = 1 with gradient 0 even at x = 0 (torch)
    check_close(pow(x, 0.0).value().to_vector(), {1, 1, 1});
    check_close(grad_of(sum(pow(x, 0.0)), x), {0, 0, 0});
    // negative bases with integer exponents, on the special-cased and the general paths
    for (DType dt : {float32, float64}) {
        Variable n(Tensor::full({20}, -2, dt));
        CHECK(pow(n, 3.0).value().flat(19) == -8);
        CHECK(pow(n, 4.0).value().flat(19) == 16);
        CHECK(pow(n, -1.0).value().flat(19) == -0.5);
        CHECK(std::isnan(pow(n, 2.5).value().flat(19)));
    }
    Variable y = param({1.5, 4}, {2});
    check_close(pow(y, 0.5).value().to_vector(), {std::sqrt(1.5), 2});
    check_close(grad_of(sum(pow(y, 2.5)), y), {2.5 * std::pow(1.5, 1.5), 2.5 * 8});
}

TEST_CASE("sqrt, log1p and where: values and gradients") {
    Variable x = param({0.25, 4}, {2});
    check_close(sqrt(x).value().to_vector(), {0.5, 2});
    check_close(grad_of(sum(sqrt(x)), x), {1, 0.25});
    Variable s = param({1e-10, 1}, {2});
    CHECK(log1p(s).value().flat(0) == doctest::Approx(1e-10).epsilon(1e-12));  // not 0
    check_close(grad_of(sum(log1p(s)), s), {1 / (1 + 1e-10), 0.5});
    Variable a = param({1, 2, 3, 4, 5, 6}, {2, 3}), b = param({-1, -2, -3}, {3});
    Tensor mask = Tensor::from({1, 0}, {2, 1}, float32);
    Variable y = where(mask, a, b);
    check_close(y.value().to_vector(), {1, 2, 3, -1, -2, -3});
    auto g = tapegrad::grad(sum(y * y), {a, b});
    check_close(g[0].value().to_vector(), {2, 4, 6, 0, 0, 0});
    check_close(g[1].value().to_vector(), {-2, -4, -6});
}

TEST_CASE("lerp: values and gradients, the same as the three ops it replaces") {
    Variable s = param({1, 2, 3, 4, 5, 6}, {2, 3}), e = param({-1, 0, 1, 2, 3, 4}, {2, 3});
    Variable w = param({0.25, 0.5, 1, 0, -1, 2}, {2, 3});
    Variable y = lerp(s, e, w);
    // s + w (e - s)
    check_close(y.value().to_vector(), {0.5, 1, 1, 4, 7, 2});
    auto g = tapegrad::grad(sum(y * y), {s, e, w});
    // dy: 2y; d/ds = 2y (1 - w), d/de = 2y w, d/dw = 2y (e - s)
    check_close(g[0].value().to_vector(), {0.75, 1, 0, 8, 28, -4});
    check_close(g[1].value().to_vector(), {0.25, 1, 2, 0, -14, 8});
    check_close(g[2].value().to_vector(), {-2, -4, -4, -16, -28, -8});
    // float32 on column slices (the GRU's z is one): what sub, mul and add give, to rounding
    // (the compiler may fuse the multiply and add)
    Generator gen(3);
    Variable p(gen.normal({5, 40}, 0, 1, float32), true),
        q(gen.normal({5, 20}, 0, 1, float32), true);
    const auto c = chunk(p, 2, 1), d = chunk(p, 2, 1);
    Variable fused = lerp(c[0], q, c[1]), plain = d[0] + d[1] * (q - d[0]);
    CHECK(max_abs_diff(fused.value(), plain.value()) < 1e-6);
    auto gf = tapegrad::grad(sum(fused * fused), {p, q});
    auto gp = tapegrad::grad(sum(plain * plain), {p, q});
    CHECK(max_abs_diff(gf[0].value(), gp[0].value()) < 1e-5);
    CHECK(max_abs_diff(gf[1].value(), gp[1].value()) < 1e-5);
}

TEST_CASE("softplus: PyTorch values, the linear part, no overflow") {
    Variable x = param({-100, 0, 10, 30}, {4});
    // torch (float64): softplus([-100, 0, 10, 30]) = [3.7201e-44, 0.6931, 10.0000454, 30]
    auto v = softplus(x).value().to_vector();
    CHECK(v[0] == doctest::Approx(std::exp(-100.0)).scale(0).epsilon(1e-12));
    CHECK(v[1] == doctest::Approx(std::log(2.0)));
    CHECK(v[2] == doctest::Approx(10 + std::log1p(std::exp(-10.0))).epsilon(1e-14));
    CHECK(v[3] == 30);  // above the threshold: x itself
    auto g = grad_of(sum(softplus(x)), x);
    CHECK(g[1] == doctest::Approx(0.5));
    CHECK(g[3] == 1);
    // beta 2, threshold 1 (torch: gradient [[1, 1, 1], [0.5, 1, 1]] at [[3, 1, 3], [0, 2, 2]])
    Variable t = param({3, 1, 3, 0, 2, 2}, {2, 3});
    check_close(grad_of(sum(softplus(t, 2, 1)), t), {1, 1, 1, 0.5, 1, 1});
    // without a threshold, float32 stays finite far out on both sides
    Variable big(Tensor::from({-1000, 100, 1000}, {3}, float32));
    auto w = softplus(big, 1, kInf).value().to_vector();
    CHECK(w[0] == 0);
    CHECK(w[1] == 100);
    CHECK(w[2] == 1000);
}

TEST_CASE("logsumexp: stable for large and infinite inputs, softmax gradient") {
    Variable x(Tensor::from({1000, 1000, -1000, -kInf, -kInf, -kInf}, {2, 3}, float32), true);
    auto v = logsumexp(x, {1}).value().to_vector();
    CHECK(v[0] == doctest::Approx(1000 + std::log(2.0)));
    CHECK(v[1] == -kInf);
    Variable y = param({1, 2, 3}, {3});
    const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
    CHECK(logsumexp(y).item() == doctest::Approx(std::log(z)));
    check_close(grad_of(logsumexp(y), y),
                {std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z});
    Variable e(Tensor::zeros({0, 2}, float64));
    CHECK(logsumexp(e, {0}).value().to_vector() == std::vector<double>{-kInf, -kInf});
}

TEST_CASE("var: unbiased by default, population with correction 0") {
    Variable x = param({1, 2, 3, 4}, {4});
    CHECK(var(x).item() == doctest::Approx(5.0 / 3));
    CHECK(var(x, {0}, 0).item() == doctest::Approx(1.25));
    // d var / dx = 2 (x - 2.5) / 3
    check_close(grad_of(var(x), x), {-1, -1.0 / 3, 1.0 / 3, 1});
    Variable m = param({1, 2, 3, 5, 7, 9}, {2, 3});
    check_close(var(m, {1}).value().to_vector(), {1, 4});
    check_close(var(m, {0}, 1, true).value().to_vector(), {8, 12.5, 18});
    CHECK(var(m, {0}, 1, true).shape() == Shape{1, 3});
}

TEST_CASE("NaN propagates through maximum, minimum, clamp, max, min, logsumexp") {
    for (DType dt : {float32, float64}) {
        Variable a(Tensor::from({kNaN, 1, 2}, {3}, dt)), b(Tensor::from({1, kNaN, 3}, {3}, dt));
        auto mx = maximum(a, b).value().to_vector();
        CHECK(std::isnan(mx[0]));
        CHECK(std::isnan(mx[1]));
        CHECK(mx[2] == 3);
        CHECK(std::isnan(minimum(a, b).value().flat(1)));
        CHECK(std::isnan(clamp(a, 0.0, 1.0).value().flat(0)));
        Tensor t = Tensor::full({40}, 1, dt);
        t.set_flat(17, kNaN);  // inside a SIMD block, not in the tail
        Variable one(Tensor::full({40}, 1, dt));
        CHECK(std::isnan(maximum(Variable(t), one).value().flat(17)));
        CHECK(std::isnan(maximum(one, Variable(t)).value().flat(17)));
        CHECK(std::isnan(minimum(one, Variable(t)).value().flat(17)));
        CHECK(std::isnan(maximum(Variable(t), constant(0, dt)).value().flat(17)));
        CHECK(std::isnan(maximum(constant(kNaN, dt), one).value().flat(3)));
        CHECK(std::isnan(clamp(Variable(t), 0.0, 2.0).value().flat(17)));
        CHECK(std::isnan(max(Variable(t)).item()));
        CHECK(std::isnan(min(Variable(t)).item()));
        CHECK(std::isnan(logsumexp(Variable(t)).item()));
    }
}

// ---- the vectorised kernels against a plain loop ----

TEST_CASE("broadcasting binary ops agree with an elementwise loop on long rows") {
    Generator gen(3);
    // [4,1,40] with [3,1]: both operands broadcast, rows long enough for the row-wise path
    const Tensor a = gen.uniform({4, 1, 40}, 0.5, 2, float32);
    const Tensor b = gen.uniform({3, 1}, 0.5, 2, float32);
    auto mx = maximum(Variable(a), Variable(b)).value();
    auto mn = minimum(Variable(b), Variable(a)).value();
    auto pw = pow(Variable(a), Variable(b)).value();
    auto pb = pow(Variable(b), Variable(a)).value();
    REQUIRE(mx.shape() == Shape{4, 3, 40});
    REQUIRE(pb.shape() == Shape{4, 3, 40});
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t j = 0; j < 3; ++j)
            for (std::size_t k = 0; k < 40; ++k) {
                const double u = a.flat(i * 40 + k), v = b.flat(j);
                const std::size_t o = (i * 3 + j) * 40 + k;
                CHECK(mx.flat(o) == std::max(u, v));
                CHECK(mn.flat(o) == std::min(u, v));
                CHECK(pw.flat(o) == doctest::Approx(std::pow(u, v)).epsilon(1e-6));
                CHECK(pb.flat(o) == doctest::Approx(std::pow(v, u)).epsilon(1e-6));
            }
}

namespace {
// Reference reduction of a row-major `shape` over flagged axes, by unravelling each index.
std::vector<double> reference(const Tensor& x, const std::vector<bool>& reduce,
                              const std::function<double(const std::vector<double>&)>& f) {
    const Shape& shape = x.shape();
    Shape kept = shape;
    for (std::size_t d = 0; d < shape.size(); ++d)
        if (reduce[d]) kept[d] = 1;
    std::vector<std::vector<double>> groups(numel(kept));
    for (std::size_t i = 0; i < x.numel(); ++i) {
        std::size_t rest = i, o = 0, stride = 1;
        for (std::size_t d = shape.size(); d-- > 0;) {
            const std::size_t idx = rest % shape[d];
            rest /= shape[d];
            if (!reduce[d]) o += idx * stride;
            stride *= kept[d];
        }
        groups[o].push_back(x.flat(i));
    }
    std::vector<double> out;
    for (const auto& g : groups) out.push_back(f(g));
    return out;
}
}  // namespace

TEST_CASE("max, min, logsumexp, var agree with a plain loop on every axis combination") {
    Generator gen(7);
    for (DType dt : {float32, float64}) {
        const Tensor t = gen.uniform({3, 5, 37}, -3, 3, dt);  // 37: SIMD blocks plus a tail
        Variable x(t);
        for (int bits = 0; bits < 8; ++bits) {
            std::vector<long> axes;
            std::vector<bool> reduce(3);
            for (long d = 0; d < 3; ++d)
                if (bits >> d & 1) {
                    axes.push_back(d);
                    reduce[static_cast<std::size_t>(d)] = true;
                }
            if (axes.empty()) reduce.assign(3, true);  // an empty list reduces every axis
            CAPTURE(bits);
            CAPTURE(name(dt));
            const double tol = dt == float32 ? 1e-5 : 1e-12;
            auto check = [&](const Variable& got, auto f) {
                auto want = reference(t, reduce, f);
                auto g = got.value().to_vector();
                REQUIRE(g.size() == want.size());
                for (std::size_t i = 0; i < g.size(); ++i)
                    CHECK(g[i] == doctest::Approx(want[i]).epsilon(tol));
            };
            check(max(x, axes), [](const auto& g) { return *std::ranges::max_element(g); });
            check(min(x, axes), [](const auto& g) { return *std::ranges::min_element(g); });
            check(logsumexp(x, axes), [](const auto& g) {
                double s = 0;
                for (double v : g) s += std::exp(v);
                return std::log(s);
            });
            check(var(x, axes), [](const auto& g) {
                double m = 0, s = 0;
                for (double v : g) m += v / static_cast<double>(g.size());
                for (double v : g) s += (v - m) * (v - m);
                return s / static_cast<double>(g.size() - 1);
            });
        }
    }
}
