#include "op_table.hpp"

namespace tapegrad::testing {

namespace {
using V = const std::vector<Variable>&;
}

const std::vector<OpRow>& op_table() {
    static const std::vector<OpRow> rows = [] {
        std::vector<OpRow> all;
        for (auto family : {rows_foundation, rows_elementwise, rows_reduce, rows_shape, rows_nn})
            for (auto& row : family()) all.push_back(std::move(row));
        return all;
    }();
    return rows;
}

std::vector<OpRow> rows_foundation() {
    return {
        // elementwise, with broadcasting
        {"add", {{2, 3}, {2, 3}}, [](V x) { return add(x[0], x[1]); }},
        {"add broadcast", {{2, 3}, {3}}, [](V x) { return add(x[0], x[1]); }},
        {"add broadcast both", {{4, 1}, {1, 3}}, [](V x) { return x[0] + x[1]; }},
        {"sub", {{2, 3}, {2, 1}}, [](V x) { return sub(x[0], x[1]); }},
        {"mul", {{2, 3}, {2, 3}}, [](V x) { return mul(x[0], x[1]); }},
        {"mul broadcast", {{3, 1, 2}, {4, 1}}, [](V x) { return x[0] * x[1]; }},
        {"div", {{2, 3}, {3}}, [](V x) { return div(x[0], x[1]); }, Domain::positive},
        {"neg", {{2, 3}}, [](V x) { return neg(x[0]); }},
        {"scalar operands", {{2, 3}}, [](V x) { return (1.0 - x[0]) * 2.0 + 3.0 / (x[0] + 4.0); },
         Domain::positive},
        {"exp", {{2, 3}}, [](V x) { return exp(x[0]); }},
        {"log", {{2, 3}}, [](V x) { return log(x[0]); }, Domain::positive},
        {"tanh", {{2, 3}}, [](V x) { return tanh(x[0]); }},
        {"sigmoid", {{2, 3}}, [](V x) { return sigmoid(x[0]); }},
        {"relu", {{2, 3}}, [](V x) { return relu(x[0]); }},
        // linear algebra
        {"matmul", {{3, 4}, {4, 2}}, [](V x) { return matmul(x[0], x[1]); }},
        {"matmul transposed flags", {{4, 3}, {2, 4}},
         [](V x) { return matmul(x[0], x[1], true, true); }},
        {"transpose", {{2, 3}}, [](V x) { return transpose(x[0]); }},
        {"transpose axes", {{2, 3, 4}}, [](V x) { return transpose(x[0], 0, 2); }},
        // reductions
        {"sum all", {{2, 3}}, [](V x) { return sum(x[0]); }},
        {"sum axis", {{2, 3, 4}}, [](V x) { return sum(x[0], {1}); }},
        {"sum axes keepdims", {{2, 3, 4}}, [](V x) { return sum(x[0], {0, -1}, true); }},
        {"mean all", {{2, 3}}, [](V x) { return mean(x[0]); }},
        {"mean axis", {{2, 3}}, [](V x) { return mean(x[0], {0}); }},
        // shape
        {"reshape", {{2, 3}}, [](V x) { return reshape(x[0], std::vector<long>{3, -1}); }},
        {"broadcast_to", {{3, 1}}, [](V x) { return broadcast_to(x[0], {2, 3, 4}); }},
        {"sum_to", {{2, 3, 4}}, [](V x) { return sum_to(x[0], {3, 1}); }},
        // a composition: a small MLP layer with a loss
        {"mlp", {{4, 3}, {3, 5}, {5}},
         [](V x) { return mean(tanh(matmul(x[0], x[1]) + x[2]) * tanh(matmul(x[0], x[1]))); }},
    };
}

std::vector<Tensor> make_inputs(const OpRow& row, DType dtype, std::uint64_t seed) {
    Generator gen(seed + std::hash<std::string>{}(row.name));
    std::vector<Tensor> inputs;
    for (const auto& shape : row.shapes) {
        Tensor t = Tensor::empty(shape, dtype);
        for (std::size_t i = 0; i < t.numel(); ++i) {
            double v = 0;
            if (row.domain == Domain::positive) {
                v = gen.uniform(0.5, 2.0);
            } else {
                v = gen.uniform(0.1, 2.0);
                if (gen.uniform() < 0.5) v = -v;
            }
            t.set_flat(i, v);
        }
        inputs.push_back(t);
    }
    return inputs;
}

}  // namespace tapegrad::testing
