// Gradcheck rows for the shape and indexing ops.
#include "op_table.hpp"

namespace tapegrad::testing {

namespace {
using V = const std::vector<Variable>&;
}

std::vector<OpRow> rows_shape() {
    return {
        // shapes and axes
        {"reshape",
         {{2, 3}},
         [](V x) {
             return reshape(x[0], std::vector<long>{3, -1});
         }},
        {"broadcast_to",
         {{3, 1}},
         [](V x) {
             return broadcast_to(x[0], {2, 3, 4});
         }},
        {"sum_to",
         {{2, 3, 4}},
         [](V x) {
             return sum_to(x[0], {3, 1});
         }},
        {"transpose", {{2, 3}}, [](V x) { return transpose(x[0]); }},
        {"transpose axes", {{2, 3, 4}}, [](V x) { return transpose(x[0], 0, 2); }},
        {"permute",
         {{2, 3, 4}},
         [](V x) {
             return permute(x[0], {2, 0, 1});
         }},
        {"permute negative dims",
         {{2, 3, 4}},
         [](V x) {
             return permute(x[0], {-1, 1, -3});
         }},
        {"squeeze all", {{2, 1, 3, 1}}, [](V x) { return squeeze(x[0]); }},
        {"squeeze axis", {{2, 1, 3}}, [](V x) { return squeeze(x[0], -2); }},
        {"unsqueeze", {{2, 3}}, [](V x) { return unsqueeze(x[0], -1) * unsqueeze(x[0], 1); }},
        // slices
        {"slice", {{4, 5}}, [](V x) { return slice(x[0], 1, 1, 4); }},
        {"slice step, negative start", {{3, 7}}, [](V x) { return slice(x[0], 1, -6, 7, 2); }},
        {"slice axis 0 of 3-D", {{5, 2, 3}}, [](V x) { return slice(x[0], 0, 0, 5, 3); }},
        {"narrow", {{3, 6}}, [](V x) { return narrow(x[0], 1, -4, 3); }},
        {"select", {{3, 4}}, [](V x) { return select(x[0], 1, 2); }},
        {"select negative index, axis 0 of 3-D",
         {{3, 2, 4}},
         [](V x) { return select(x[0], 0, -1); }},
        {"select negative axis and index", {{2, 3, 4}}, [](V x) { return select(x[0], -1, -4); }},
        {"select twice (x[1, :, -1] * x[0, 0, 1:])",
         {{2, 3, 4}},
         [](V x) {
             return select(select(x[0], 0, 1), -1, -1) *
                    slice(select(select(x[0], 0, 0), 0, 0), 0, 1, 4);
         }},
        // joining and splitting
        {"concat", {{2, 3}, {2, 1}, {2, 2}}, [](V x) { return concat(x, 1); }},
        {"concat axis 0 of 3-D", {{1, 2, 3}, {2, 2, 3}}, [](V x) { return concat(x, 0); }},
        {"concat 11 inputs (link tree)", std::vector<Shape>(11, Shape{1, 2}),
         [](V x) {
             return concat(x, 0) * reshape(concat(x, 1), std::vector<long>{11, 2});
         }},
        {"stack", {{2, 3}, {2, 3}, {2, 3}}, [](V x) { return stack(x, 1); }},
        {"stack 10 inputs, last axis", std::vector<Shape>(10, Shape{3}),
         [](V x) { return stack(x, -1); }},
        {"split with an unused and an empty piece",
         {{2, 7}},
         [](V x) {
             auto p = split(x[0], {2, 0, 5}, 1);
             return concat({p[2] * 2.0, p[0]}, 1);
         }},
        {"chunk (LSTM gates, one unused)",
         {{3, 8}},
         [](V x) {
             auto g = chunk(x[0], 4, 1);
             return sigmoid(g[0]) * tanh(g[2]) + g[3];
         }},
        {"chunk axis 0",
         {{4, 3}},
         [](V x) {
             auto p = chunk(x[0], 2, 0);
             return p[0] * p[1];
         }},
        {"unbind",
         {{3, 2}},
         [](V x) {
             auto u = unbind(x[0], 0);
             return stack({u[2], u[0] * u[1]}, 1);
         }},
        // integer indexing
        {"index_select repeated (embedding)",
         {{4, 3}},
         [](V x) {
             return index_select(x[0], 0, {1, 3, 1, 1});
         }},
        {"index_select last axis",
         {{2, 5}},
         [](V x) {
             return index_select(x[0], -1, {4, 0, 4});
         }},
        {"gather axis 1",
         {{3, 4}},
         [](V x) {
             return gather(x[0], 1, {0, 3, 3, 1, 2, 2}, {3, 2});
         }},
        {"gather axis 0, smaller index",
         {{3, 4}},
         [](V x) {
             return gather(x[0], 0, {2, 0, 2}, {1, 3});
         }},
        // a composition: one LSTM cell step, gates cut with chunk
        {"lstm step",
         {{2, 3}, {3, 8}, {2, 2}, {2, 8}, {2, 2}},
         [](V x) {
             auto g = chunk(matmul(x[0], x[1]) + matmul(x[2], x[3]), 4, 1);
             Variable c = sigmoid(g[1]) * x[4] + sigmoid(g[0]) * tanh(g[2]);
             return concat({sigmoid(g[3]) * tanh(c), c}, 1);
         }},
    };
}

}  // namespace tapegrad::testing
