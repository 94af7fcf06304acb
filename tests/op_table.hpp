// The gradcheck table: one row per op. A new op is a new row in its family's op_rows_*.cpp
// (test_op_coverage.cpp fails on a public op without one); the float64 gradcheck and the
// gradgradcheck suites both walk every row.
#pragma once

#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tapegrad::testing {

// Where a row's inputs are drawn from, so finite differences stay off kinks and poles.
enum class Domain {
    any,       // [-2, 2] with |x| >= 0.1 (off the kinks at 0)
    positive,  // [0.5, 2]
};

struct OpRow {
    std::string name;
    std::vector<Shape> shapes;
    GradcheckFn f;
    Domain domain = Domain::any;
    bool twice_differentiable = true;  // has a gradgradcheck row
};

// All rows: the concatenation of the families below, each in its own op_rows_*.cpp.
const std::vector<OpRow>& op_table();
std::vector<OpRow> rows_arith();
std::vector<OpRow> rows_elementwise();
std::vector<OpRow> rows_reduce();
std::vector<OpRow> rows_shape();
std::vector<OpRow> rows_linalg();
std::vector<OpRow> rows_nn();
std::vector<OpRow> rows_scan();
std::vector<Tensor> make_inputs(const OpRow& row, DType dtype, std::uint64_t seed = 0);

}  // namespace tapegrad::testing
