#include "core/graph.hpp"

#include <fmt/format.h>
#include <cmath>
#include <unordered_map>

#include "core/tape.hpp"

namespace tapegrad {

constinit thread_local GraphScope* detail::open_graph_scope = nullptr;

GraphScope::GraphScope(const std::string& group, long step)
    : parent_(detail::open_graph_scope), path_(&own_path_), step_(step) {
    if (group.empty() && parent_) path_ = parent_->path_;
    else own_path_ = parent_ && !parent_->path_->empty() ? *parent_->path_ + "/" + group : group;
    if (step_ < 0 && parent_) step_ = parent_->step_;
    detail::open_graph_scope = this;
}

GraphScope::~GraphScope() { detail::open_graph_scope = parent_; }

namespace {
GraphValue value_of(const Variable& v) { return {v.shape(), v.dtype(), v.name()}; }

}  // namespace

Graph graph_of(const Variable& root) {
    if (!root.defined()) throw GraphError("graph_of: the variable is undefined");
    Graph graph;
    graph.scopes.push_back({});
    std::unordered_map<const detail::VarImpl*, std::size_t> leaf_index;
    auto leaf = [&](const Variable& v) {
        auto [it, fresh] = leaf_index.try_emplace(v.impl(), graph.leaves.size());
        if (fresh)
            graph.leaves.push_back({v, value_of(v), v.grad().defined() ? norm_of(v.grad()) : -1.0});
        return it->second;
    };
    if (root.is_leaf()) {
        graph.root = {true, leaf(root)};
        return graph;
    }
    Tape& tape = *root.impl()->tape;
    tape.check_owned(*root.impl(), "graph_of");
    auto recorded_here = [&](const Variable& v) {
        return v.defined() && v.impl()->tape == &tape && v.impl()->generation == tape.generation_;
    };

    // The entries the root depends on: inputs always have smaller indices than their users.
    const std::size_t r = root.impl()->index;
    std::vector<char> reached(r + 1, 0);
    reached[r] = 1;
    for (std::size_t i = r + 1; i-- > 0;) {
        if (!reached[i]) continue;
        const auto& e = tape.entries_[i];
        if (!e.backward)
            throw GraphError(fmt::format(
                "graph_of: the graph through '{}' was freed by an earlier backward(); run that "
                "backward with retain_graph = true to read the graph afterwards",
                e.op));
        for (const auto& in : e.inputs)
            if (recorded_here(in)) reached[in.impl()->index] = 1;
    }

    std::vector<std::size_t> op_index(r + 1, 0);
    std::unordered_map<std::uint32_t, std::size_t> scope_index{{0, 0}};
    for (std::size_t i = 0; i <= r; ++i) {
        if (!reached[i]) continue;
        const auto& e = tape.entries_[i];
        const auto& notes = tape.notes_;
        Graph::Op op{.op = e.op,
                     .site = call_site(e.loc),
                     .grad_norm = i < notes.grad_norms.size() ? notes.grad_norms[i] : -1.0};
        op.results.push_back(value_of(e.result));
        for (const auto& m : e.more_results) op.results.push_back(value_of(m));
        for (const auto& in : e.inputs) {
            if (!in.defined()) continue;
            if (recorded_here(in))
                op.inputs.push_back({false, op_index[in.impl()->index], in.impl()->output});
            else op.inputs.push_back({true, leaf(in)});
        }
        const std::uint32_t scope = i < notes.entry_scope.size() ? notes.entry_scope[i] : 0;
        auto [it, fresh] = scope_index.try_emplace(scope, graph.scopes.size());
        if (fresh)
            graph.scopes.push_back(
                {notes.paths[notes.scope_paths[scope - 1]], notes.scope_steps[scope - 1]});
        op.scope = it->second;
        op_index[i] = graph.ops.size();
        graph.ops.push_back(std::move(op));
    }
    graph.root = {false, op_index[r], root.impl()->output};
    return graph;
}

}  // namespace tapegrad
