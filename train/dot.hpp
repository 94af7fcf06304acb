// Graphviz DOT export of the graph behind a variable: ops with their result's name, shape and
// dtype, parameters by name, data inputs, boxes per module, layer, direction and time step.
//
//   auto out = lstm.forward(x);
//   std::ofstream("lstm.dot") << to_dot(out.output, {.names = lstm.named_parameters()});
//   // dot -Tsvg lstm.dot -o lstm.svg
//
// Long sequences stay drawable: per group, the first and last keep_steps time steps are drawn
// and the steps between become one node, so a T = 1000 graph draws like a T = 6 one (a 2-layer
// bidirectional LSTM: about 330 nodes, under a second in `dot -Tsvg`). Keep keep_steps small:
// dot's layout time grows steeply with the steps drawn, as every weight and the per-step inputs
// and outputs have an edge into each of them (all 20 steps of one LSTM layer take it over 10 s).
//
// After loss.backward({}, {.retain_graph = true, .keep_grad_norms = true}), color_by_grad
// fills each op by the norm of its gradient on a log scale: where gradients vanish or explode
// along a sequence shows as colour.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "core/graph.hpp"
#include "core/variable.hpp"

namespace tapegrad {

struct DotOptions {
    // Names of leaves, such as module.named_parameters(): shown instead of Variable::name().
    std::vector<std::pair<std::string, Variable>> names{};
    bool group = true;  // a box per scope group ("LSTM" / "layer 0" / "forward") and time step
    // Per group, draw the first and the last keep_steps time steps; the steps between fold
    // into one node ("… 994 steps folded …"). 0: draw every step (dot takes long past about 10).
    std::size_t keep_steps = 3;
    // Fill ops and leaves by log10 of their gradient's norm, with a legend. Needs a backward
    // with {.retain_graph = true, .keep_grad_norms = true} before.
    bool color_by_grad = false;
    std::string rankdir = "TB";  // "TB" (top to bottom), "LR", "BT" or "RL"
    bool show_shapes = true;     // "[4,8] f32" under each op and leaf
    bool show_sites = false;     // where each op was called from ("cells.cpp:77")
};

// The DOT text of the graph that produced `root` (see graph_of). Throws GraphError when the
// graph is gone (freed by a backward without retain_graph) or color_by_grad finds no norms,
// ValueError for an undefined variable or a bad option.
std::string to_dot(const Variable& root, const DotOptions& options = {});

// Several graphs side by side, each in a box titled with its name ("RNN", "LSTM", "GRU"), on
// one gradient colour scale.
std::string to_dot(const std::vector<std::pair<std::string, Variable>>& roots,
                   const DotOptions& options = {});

}  // namespace tapegrad
