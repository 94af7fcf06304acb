// Gradcheck rows for the scans over time, and linear_scan's values against a step-by-step loop
// of ops, both directions, with gradients of gradients through the backward scan.
#include <doctest/doctest.h>

#include <cstring>

#include "op_table.hpp"
#include "tests/test_support.hpp"

namespace tapegrad::testing {

namespace {
using V = const std::vector<Variable>&;
}  // namespace

std::vector<OpRow> rows_scan() {
    return {
        {"linear_scan",
         {{4, 2, 3}, {4, 2, 3}, {2, 3}},
         [](V x) { return linear_scan(x[0], x[1], x[2]); }},
        {"linear_scan reverse",
         {{4, 2, 3}, {4, 2, 3}, {2, 3}},
         [](V x) { return linear_scan(x[0], x[1], x[2], true); }},
        {"linear_scan one step",
         {{1, 5}, {1, 5}, {5}},
         [](V x) { return linear_scan(x[0], x[1], x[2]); }},
        {"linear_scan of a product",
         {{3, 2}, {3, 2}, {2}},  // a also in b: a path through both
         [](V x) { return linear_scan(x[0], x[0] * x[1], x[2]); }},
    };
}

}  // namespace tapegrad::testing

using namespace tapegrad;
using tapegrad::test::has;
using tapegrad::test::message_of;

TEST_CASE("linear_scan: every h_t of the recurrence, both directions, as a loop of ops") {
    for (const bool reverse : {false, true}) {
        CAPTURE(reverse);
        Generator gen(3);
        const std::size_t T = 6, B = 3, H = 1500;  // more lanes than one parallel block
        const Variable a(gen.uniform({T, B, H}, -1, 1, float64), true);
        const Variable b(gen.normal({T, B, H}, 0, 1, float64), true);
        const Variable h0(gen.normal({B, H}, 0, 1, float64), true);
        const Variable h = linear_scan(a, b, h0, reverse);
        // The same recurrence, one step at a time.
        std::vector<Variable> steps(T);
        Variable prev = h0;
        for (std::size_t s = 0; s < T; ++s) {
            const long t = static_cast<long>(reverse ? T - 1 - s : s);
            prev = select(a, 0, t) * prev + select(b, 0, t);
            steps[static_cast<std::size_t>(t)] = prev;
        }
        const Variable loop = stack(steps, 0);
        CHECK(max_abs_diff(h.value(), loop.value()) < 1e-12);
        // Gradients agree too (weights make every step count differently).
        const Variable w(gen.normal({T, B, H}, 0, 1, float64));
        const auto g_scan = grad(sum(h * w), {a, b, h0});
        const auto g_loop = grad(sum(loop * w), {a, b, h0});
        for (std::size_t i = 0; i < 3; ++i)
            CHECK(max_abs_diff(g_scan[i].value(), g_loop[i].value()) < 1e-12);
    }
}

TEST_CASE("linear_scan: shapes, dtypes and zero steps") {
    const Variable a(Tensor::ones({3, 2}, float32)), b(Tensor::ones({3, 2}, float32));
    const Variable h0(Tensor::zeros({2}, float32));
    CHECK(linear_scan(a, b, h0).value().to_vector() == std::vector<double>{1, 1, 2, 2, 3, 3});
    CHECK(linear_scan(a, b, h0, true).value().to_vector() == std::vector<double>{3, 3, 2, 2, 1, 1});
    const Variable e(Tensor::zeros({0, 2}, float64), true), z(Tensor::ones({2}, float64), true);
    CHECK(linear_scan(e, e, z).shape() == Shape{0, 2});
    CHECK(message_of<ShapeError>([&] {
              (void)linear_scan(a, b, Variable(Tensor::zeros({3}, float32)));
          }).find("linear_scan: h0 must be [2] (a's shape [3,2] without time), got [3]") == 0);
    CHECK(has(message_of<ShapeError>([&] {
                  (void)linear_scan(a, Variable(Tensor::ones({3, 1}, float32)), h0);
              }),
              "a and b must be [T, ...] of one shape, got [3,2] and [3,1]"));
    CHECK(has(message_of<DTypeError>(
                  [&] { (void)linear_scan(a, b, Variable(Tensor::zeros({2}, float64))); }),
              "linear_scan: dtypes differ"));
}

TEST_CASE("linear_scan: bitwise the same results with 1, 2 and 4 threads") {
    Generator gen(9);
    const Tensor a = gen.uniform({50, 8, 700}, -1, 1, float32);  // 5600 lanes: several blocks
    const Tensor b = gen.normal({50, 8, 700}, 0, 1, float32);
    const Tensor h0 = gen.normal({8, 700}, 0, 1, float32);
    std::vector<std::vector<Tensor>> runs;
    for (const std::size_t threads : {1, 2, 4}) {
        set_num_threads(threads);
        const Variable av(a, true), bv(b, true), hv(h0, true);
        const Variable h = linear_scan(av, bv, hv);
        const auto g = grad(sum(h * h), {av, bv, hv});
        runs.push_back({h.value(), g[0].value(), g[1].value(), g[2].value()});
    }
    set_num_threads(0);
    for (std::size_t r = 1; r < runs.size(); ++r)
        for (std::size_t i = 0; i < 4; ++i) {
            CAPTURE(r);
            CAPTURE(i);
            CHECK(std::memcmp(runs[r][i].data<float>(), runs[0][i].data<float>(),
                              runs[0][i].nbytes()) == 0);
        }
}
