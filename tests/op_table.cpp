#include "op_table.hpp"

namespace tapegrad::testing {

const std::vector<OpRow>& op_table() {
    static const std::vector<OpRow> rows = [] {
        std::vector<OpRow> all;
        for (auto family : {rows_arith, rows_elementwise, rows_reduce, rows_shape, rows_linalg,
                            rows_nn, rows_scan})
            for (auto& row : family()) all.push_back(std::move(row));
        return all;
    }();
    return rows;
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
