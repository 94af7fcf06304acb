// Gradcheck rows for the neural-network functions and losses (ops/nn.hpp, ops/loss.hpp).
#include "op_table.hpp"

namespace tapegrad::testing {

namespace {
using V = const std::vector<Variable>&;
const std::vector<std::int64_t> targets{2, 0, -100, 3};  // one ignored
}  // namespace

std::vector<OpRow> rows_nn() {
    return {
        {"softmax", {{3, 4}}, [](V x) { return softmax(x[0], 1); }},
        {"softmax axis 0", {{3, 4}}, [](V x) { return softmax(x[0], 0); }},
        {"log_softmax", {{3, 4}}, [](V x) { return log_softmax(x[0], -1); }},
        {"log_softmax 3-d middle axis", {{2, 3, 2}}, [](V x) { return log_softmax(x[0], 1); }},
        {"mse_loss", {{3, 4}, {3, 4}}, [](V x) { return mse_loss(x[0], x[1]); }},
        {"mse_loss sum",
         {{3, 4}, {3, 4}},
         [](V x) { return mse_loss(x[0], x[1], Reduction::sum); }},
        {"nll_loss", {{4, 5}}, [](V x) { return nll_loss(x[0], targets); }},
        {"cross_entropy", {{4, 5}}, [](V x) { return cross_entropy(x[0], targets); }},
        {"cross_entropy none",
         {{4, 5}},
         [](V x) { return cross_entropy(x[0], targets, -100, Reduction::none); }},
        {"binary_cross_entropy_with_logits",
         {{3, 4}, {3, 4}},
         [](V x) { return binary_cross_entropy_with_logits(x[0], sigmoid(x[1])); }},
        {"layer_norm", {{3, 4}, {4}, {4}}, [](V x) { return layer_norm(x[0], 1, x[1], x[2]); }},
        {"layer_norm two axes, no affine", {{2, 3, 2}}, [](V x) { return layer_norm(x[0], 2); }},
        {"dropout (train, seeded)",
         {{3, 4}},
         [](V x) {
             Generator g(5);  // the same mask at every evaluation
             return dropout(x[0], 0.4, true, g);
         }},
    };
}

}  // namespace tapegrad::testing
