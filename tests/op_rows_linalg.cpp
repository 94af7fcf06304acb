// Gradcheck rows for the matrix products: matmul, plain, transposed and batched with
// broadcasting, and addmm.
#include "op_table.hpp"

namespace tapegrad::testing {

namespace {
using V = const std::vector<Variable>&;
}

std::vector<OpRow> rows_linalg() {
    return {
        {"matmul", {{3, 4}, {4, 2}}, [](V x) { return matmul(x[0], x[1]); }},
        {"matmul transposed flags",
         {{4, 3}, {2, 4}},
         [](V x) { return matmul(x[0], x[1], true, true); }},
        // batched matmul
        {"matmul batched", {{2, 3, 4}, {2, 4, 5}}, [](V x) { return matmul(x[0], x[1]); }},
        {"matmul 2-D x batched", {{3, 4}, {2, 4, 5}}, [](V x) { return matmul(x[0], x[1]); }},
        {"matmul [1,M,K] x [B,K,N]",
         {{1, 3, 4}, {2, 4, 2}},
         [](V x) { return matmul(x[0], x[1]); }},
        {"matmul batched x [1,K,N]",
         {{2, 3, 4}, {1, 4, 2}},
         [](V x) { return matmul(x[0], x[1]); }},
        {"matmul batched x 2-D (folded)",
         {{2, 3, 4}, {4, 5}},
         [](V x) { return matmul(x[0], x[1]); }},
        {"matmul batched x 2-D transposed",
         {{2, 3, 4}, {5, 4}},
         [](V x) { return matmul(x[0], x[1], false, true); }},
        {"matmul batched transposed flags",
         {{2, 4, 3}, {2, 2, 4}},
         [](V x) { return matmul(x[0], x[1], true, true); }},
        {"matmul 4-D batch broadcast",
         {{2, 1, 3, 4}, {3, 4, 2}},
         [](V x) { return matmul(x[0], x[1]); }},
        // addmm: c + op(a) op(b), c full or a broadcast bias
        {"addmm [M,N] + A B",
         {{3, 5}, {3, 4}, {4, 5}},
         [](V x) { return addmm(x[0], x[1], x[2]); }},
        {"addmm bias [N] + A Bᵀ",
         {{5}, {3, 4}, {5, 4}},
         [](V x) { return addmm(x[0], x[1], x[2], false, true); }},
        {"addmm column [M,1] + A B, M = N",
         {{3, 1}, {3, 2}, {2, 3}},
         [](V x) { return addmm(x[0], x[1], x[2]); }},
        {"addmm [1,N] + Aᵀ Bᵀ",
         {{1, 2}, {4, 3}, {2, 4}},
         [](V x) { return addmm(x[0], x[1], x[2], true, true); }},
        // linear: x Wᵀ + b, as torch.nn.functional.linear
        {"linear", {{3, 4}, {5, 4}, {5}}, [](V x) { return linear(x[0], x[1], x[2]); }},
        {"linear without bias", {{3, 4}, {5, 4}}, [](V x) { return linear(x[0], x[1]); }},
        {"linear batched [2,3,4]",
         {{2, 3, 4}, {5, 4}, {5}},
         [](V x) { return linear(x[0], x[1], x[2]); }},
        // a composition: a small MLP layer with a loss
        {"mlp",
         {{4, 3}, {3, 5}, {5}},
         [](V x) { return mean(tanh(matmul(x[0], x[1]) + x[2]) * tanh(matmul(x[0], x[1]))); }},
    };
}

}  // namespace tapegrad::testing
