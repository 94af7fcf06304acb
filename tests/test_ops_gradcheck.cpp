// Every row of the op table passes gradcheck in float64, and gradgradcheck where the op is
// twice differentiable.
#include <doctest/doctest.h>

#include <tapegrad/train/gradcheck_doctest.hpp>

#include "op_table.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

TEST_CASE("ops: every row of the op table passes gradcheck (float64)") {
    for (const auto& row : op_table()) {
        CAPTURE(row.name);
        CHECK_GRADCHECK(row.f, make_inputs(row, float64));
    }
}

TEST_CASE("ops: every row runs in float32 and matches float64 values") {
    for (const auto& row : op_table()) {
        CAPTURE(row.name);
        auto in32 = make_inputs(row, float32);
        std::vector<Variable> v32, v64;
        for (const auto& t : in32) {
            v32.emplace_back(t);
            v64.emplace_back(t.to(float64));
        }
        Variable y32 = row.f(v32), y64 = row.f(v64);
        CHECK(y32.dtype() == float32);
        CHECK(y64.dtype() == float64);
        REQUIRE(y32.shape() == y64.shape());
        CHECK(max_abs_diff(y32.value().to(float64), y64.value()) < 1e-4);
    }
}

TEST_CASE("ops: every twice-differentiable row passes gradgradcheck (float64)") {
    for (const auto& row : op_table()) {
        if (!row.twice_differentiable) continue;
        CAPTURE(row.name);
        CHECK_GRADGRADCHECK(row.f, make_inputs(row, float64));
    }
}
