// The graph behind a variable, read back from the tape for tools that show it (to_dot in
// train/dot.hpp), and GraphScope, the labels that group its ops by module and time step.
//
//   GraphScope layer("LSTM/layer 0");           // ops recorded while it lives join the group
//   for (long t = 0; t < T; ++t) {
//       GraphScope step("", t);                  // the same group, time step t
//       state = cell.step(x[t], state);
//   }
#pragma once

#include <string>
#include <vector>

#include "core/variable.hpp"

namespace tapegrad {

class Tape;

// Groups the ops recorded on this thread while it lives. Scopes nest: a group opened inside
// another is its child ("LSTM" then "layer 0" gives "LSTM/layer 0"); an empty group keeps the
// enclosing one. `step` marks the ops of one time step (-1: the enclosing scope's step).
class GraphScope {
public:
    explicit GraphScope(const std::string& group, long step = -1);
    ~GraphScope();
    GraphScope(const GraphScope&) = delete;
    GraphScope& operator=(const GraphScope&) = delete;
    const std::string& path() const { return *path_; }
    long step() const { return step_; }

private:
    friend class Tape;
    GraphScope* parent_;
    std::string own_path_;     // set when this scope opens a group
    const std::string* path_;  // own_path_, or the enclosing scope's
    long step_;
    // Where this scope was entered last (Tape::current_scope), so each op recorded in it
    // costs one comparison.
    const Tape* tape_ = nullptr;
    std::uint64_t generation_ = 0;
    std::uint32_t id_ = 0;
};

namespace detail {
extern constinit thread_local GraphScope* open_graph_scope;  // innermost open scope on this thread
}

// A variable as the graph shows it.
struct GraphValue {
    Shape shape;
    DType dtype = float32;
    std::string name;  // Variable::name(), may be empty
};

// The graph that produced a variable: its ops in recording order (an op's inputs come before
// it), the leaves they read and the scopes they were recorded in.
struct Graph {
    struct Input {
        bool is_leaf;  // leaves[index], or the result `output` of ops[index]
        std::size_t index;
        std::size_t output = 0;
    };
    struct Op {
        std::string op;    // "matmul"
        std::string site;  // "cells.cpp:40", where it was called from (may be empty)
        std::vector<GraphValue> results{};
        std::vector<Input> inputs{};
        std::size_t scope = 0;  // scopes[scope]; 0 is the top level
        double grad_norm = -1;  // ‖d loss / d results‖ kept by BackwardOptions::keep_grad_norms
    };
    struct Leaf {
        Variable variable;  // a parameter, a data input or a constant
        GraphValue value;
        double grad_norm = -1;  // ‖grad()‖ when it has one
    };
    struct Scope {
        std::string path;  // "LSTM/layer 0/forward"; empty for the top level
        long step = -1;
    };
    std::vector<Op> ops;
    std::vector<Leaf> leaves;
    std::vector<Scope> scopes;  // scopes[0] is the top level
    Input root;                 // the variable asked for
};

// Reads the graph of `root` off its tape. The graph must still be there: run backward with
// retain_graph = true before reading a graph after backward. A leaf gives a graph of one leaf.
Graph graph_of(const Variable& root);

}  // namespace tapegrad
