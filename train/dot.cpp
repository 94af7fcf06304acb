#include "train/dot.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string_view>
#include <unordered_map>

#include "core/error.hpp"

namespace tapegrad {

namespace {

// Text inside an HTML-like label (<...>): the characters HTML gives a meaning.
std::string html(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\n': out += "<BR/>"; break;
            default: out += c;
        }
    }
    return out;
}

// A double-quoted DOT string. A backslash is doubled: Graphviz reads \N, \G, \l in labels.
std::string quoted(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        if (c == '\n') out += "\\n";
        else out += c;
    }
    return out + '"';
}

std::string_view short_dtype(DType d) { return d == float32 ? "f32" : "f64"; }

std::string value_text(const GraphValue& v) {
    return fmt::format("{} {}", to_string(v.shape), short_dtype(v.dtype));
}

// The shapes of an op's results on one line: "4 × [2,8] f32" when they are alike.
std::string results_text(const std::vector<GraphValue>& results) {
    if (results.size() == 1) return value_text(results[0]);
    const bool alike = std::all_of(results.begin(), results.end(), [&](const GraphValue& r) {
        return r.shape == results[0].shape && r.dtype == results[0].dtype;
    });
    if (alike) return fmt::format("{} × {}", results.size(), value_text(results[0]));
    std::string out;
    for (std::size_t k = 0; k < results.size() && k < 3; ++k)
        out += (k ? ", " : "") + to_string(results[k].shape);
    if (results.size() > 3) out += ", …";
    return out + " " + std::string(short_dtype(results[0].dtype));
}

// The gradient colour scale: ColorBrewer's YlOrRd, small norms pale, large ones dark.
constexpr std::array<const char*, 9> kScale = {"#ffffcc", "#ffeda0", "#fed976",
                                               "#feb24c", "#fd8d3c", "#fc4e2a",
                                               "#e31a1c", "#bd0026", "#800026"};
constexpr const char* kZeroFill = "#e8e8e8";
constexpr std::size_t kFirstDark = 5;  // colours from here on take white text
// The scale spans at most this many decades below the largest norm: vanished gradients
// (float32 denormals, 1e-45) would otherwise squeeze every norm that matters into one colour.
constexpr double kDecades = 8;

struct Scale {
    double lo = std::numeric_limits<double>::infinity();  // log10 of the smallest norm
    double hi = -std::numeric_limits<double>::infinity();
    void add(double norm) {
        if (norm <= 0) return;
        lo = std::min(lo, std::log10(norm));
        hi = std::max(hi, std::log10(norm));
    }
    void clamp() { lo = std::max(lo, hi - kDecades); }
    bool empty() const { return lo > hi; }
    std::size_t bin(double norm) const {
        if (hi - lo < 1e-12) return kScale.size() / 2;
        const double u = std::max(0.0, (std::log10(norm) - lo) / (hi - lo));
        return std::min(kScale.size() - 1, static_cast<std::size_t>(u * kScale.size()));
    }
    double bound(std::size_t b) const {  // where bin b starts (b = size(): the largest norm)
        return std::pow(10.0, lo + (hi - lo) * static_cast<double>(b) / kScale.size());
    }
};

bool all_zero(const Variable& v) {  // looked at only for inputs of moderate size
    return v.numel() <= (std::size_t{1} << 20) && norm_of(v.value()) == 0;
}

std::string number(double norm) { return norm == 0 ? "0" : fmt::format("{:.1e}", norm); }
std::string norm_text(double norm) { return "‖g‖ " + number(norm); }

// A node's fill by its gradient norm: white where no gradient reached it, grey where it is 0.
struct Fill {
    std::string color;
    bool dark = false;  // the text goes white
    std::string attributes() const {
        return fmt::format("fillcolor=\"{}\"{}", color, dark ? ", fontcolor=\"#ffffff\"" : "");
    }
};
Fill grad_fill(const Scale& scale, double norm) {
    if (norm < 0) return {"#ffffff"};
    if (norm == 0 || scale.empty()) return {kZeroFill};
    const std::size_t b = scale.bin(norm);
    return {kScale[b], b >= kFirstDark};
}

// Space under a line in bold: its underscores would touch the line below.
constexpr const char* kGap = "<BR/><FONT POINT-SIZE=\"3\"> </FONT>";

// A line of a label in a smaller font, grey (light grey on a dark fill).
std::string small(std::string_view text, bool dark = false, int size = 9) {
    return fmt::format("<BR/><FONT POINT-SIZE=\"{}\" COLOR=\"{}\">{}</FONT>", size,
                       dark ? "#eeeeee" : "#555555", html(text));
}

// One graph drawn as DOT statements: its nodes inside nested clusters, then its edges.
class Drawer {
public:
    Drawer(const Graph& graph, const DotOptions& options, const Scale& scale,
           const std::unordered_map<const detail::VarImpl*, std::string>& names, std::string id)
        : g_(graph), opt_(options), scale_(scale), names_(names), id_(std::move(id)) {}

    void draw(std::string& out, const std::string& indent) {
        fold();
        place();
        std::size_t clusters = 0;
        emit(root_, out, indent, clusters);
        edges(out, indent);
    }

private:
    struct Fold {
        std::size_t count = 0;  // steps folded
        long first = 0, last = 0;
        double min_norm = std::numeric_limits<double>::infinity(), max_norm = -1;
        std::string node;  // its node id
    };
    struct Group {  // a cluster: one component of a scope path
        std::string label;
        std::vector<std::string> nodes;                  // outside any step
        std::map<long, std::vector<std::string>> steps;  // per time step
        std::vector<std::unique_ptr<Group>> children;
        std::unordered_map<std::string, Group*> by_label;
    };

    const Graph& g_;
    const DotOptions& opt_;
    const Scale& scale_;
    const std::unordered_map<const detail::VarImpl*, std::string>& names_;
    std::string id_;  // prefix of node ids, unique per graph

    std::map<std::string, Fold> folds_;  // by group path
    std::vector<const Fold*> op_fold_;   // per op: its fold, or null when drawn
    std::vector<char> leaf_drawn_;
    std::vector<std::string> leaf_group_;  // the deepest group all of a leaf's users are in
    Group root_;

    const Graph::Scope& scope_of(std::size_t op) const { return g_.scopes[g_.ops[op].scope]; }
    bool inline_constant(std::size_t leaf) const {
        const Variable& v = g_.leaves[leaf].variable;
        return !v.requires_grad() && v.numel() == 1 && !is_root(true, leaf);
    }
    bool is_root(bool leaf, std::size_t index) const {
        return g_.root.is_leaf == leaf && g_.root.index == index;
    }
    std::string op_node(std::size_t op) const {
        return op_fold_[op] ? op_fold_[op]->node : fmt::format("{}op{}", id_, op);
    }
    std::string leaf_node(std::size_t leaf) const { return fmt::format("{}leaf{}", id_, leaf); }

    // Which ops are folded: per group, the steps past the first and last keep_steps.
    void fold() {
        op_fold_.assign(g_.ops.size(), nullptr);
        if (opt_.keep_steps == 0) return;
        std::map<std::string, std::set<long>> steps;
        for (const auto& s : g_.scopes)
            if (s.step >= 0) steps[s.path].insert(s.step);
        std::map<std::string, std::set<long>> folded;
        for (auto& [path, set] : steps) {
            if (set.size() <= 2 * opt_.keep_steps) continue;
            auto first = std::next(set.begin(), static_cast<long>(opt_.keep_steps));
            auto last = std::prev(set.end(), static_cast<long>(opt_.keep_steps));
            Fold& f = folds_[path];
            f.count = static_cast<std::size_t>(std::distance(first, last));
            f.first = *first;
            f.last = *std::prev(last);
            f.node = fmt::format("{}fold{}", id_, folds_.size() - 1);
            folded[path] = std::set<long>(first, last);
        }
        for (std::size_t i = 0; i < g_.ops.size(); ++i) {
            const auto& s = scope_of(i);
            if (s.step < 0 || is_root(false, i)) continue;
            auto it = folded.find(s.path);
            if (it == folded.end() || !it->second.count(s.step)) continue;
            Fold& f = folds_[s.path];
            op_fold_[i] = &f;
            if (g_.ops[i].grad_norm >= 0) {
                f.min_norm = std::min(f.min_norm, g_.ops[i].grad_norm);
                f.max_norm = std::max(f.max_norm, g_.ops[i].grad_norm);
            }
        }
    }

    Group& group(const std::string& path) {
        Group* at = &root_;
        if (!opt_.group) return *at;
        std::size_t begin = 0;
        while (begin < path.size()) {
            std::size_t end = path.find('/', begin);
            if (end == std::string::npos) end = path.size();
            const std::string part = path.substr(begin, end - begin);
            auto [it, fresh] = at->by_label.try_emplace(part, nullptr);
            if (fresh) {
                at->children.push_back(std::make_unique<Group>());
                at->children.back()->label = part;
                it->second = at->children.back().get();
            }
            at = it->second;
            begin = end + 1;
        }
        return *at;
    }

    // The longest common prefix of two scope paths, by whole components.
    static std::string common(const std::string& a, const std::string& b) {
        std::size_t n = 0, i = 0;
        for (; i < a.size() && i < b.size() && a[i] == b[i]; ++i)
            if (a[i] == '/') n = i;
        const bool whole = (i == a.size() || a[i] == '/') && (i == b.size() || b[i] == '/');
        return whole ? a.substr(0, i) : a.substr(0, n);
    }

    // Decides which leaves are drawn and where, and files every node under its cluster.
    void place() {
        leaf_drawn_.assign(g_.leaves.size(), 0);
        leaf_group_.assign(g_.leaves.size(), std::string());
        std::vector<char> seen(g_.leaves.size(), 0);
        for (std::size_t i = 0; i < g_.ops.size(); ++i) {
            if (op_fold_[i]) continue;  // leaves only folded ops read are not drawn
            for (const auto& in : g_.ops[i].inputs) {
                if (!in.is_leaf || inline_constant(in.index)) continue;
                const std::string& path = scope_of(i).path;
                leaf_group_[in.index] = seen[in.index] ? common(leaf_group_[in.index], path) : path;
                seen[in.index] = leaf_drawn_[in.index] = 1;
            }
        }
        if (g_.root.is_leaf) leaf_drawn_[g_.root.index] = 1;

        for (std::size_t j = 0; j < g_.leaves.size(); ++j)
            if (leaf_drawn_[j]) group(leaf_group_[j]).nodes.push_back(leaf_statement(j));
        for (const auto& [path, f] : folds_) group(path).nodes.push_back(fold_statement(f));
        for (std::size_t i = 0; i < g_.ops.size(); ++i) {
            if (op_fold_[i]) continue;
            const auto& s = scope_of(i);
            Group& grp = group(s.path);
            if (s.step >= 0 && opt_.group) grp.steps[s.step].push_back(op_statement(i));
            else grp.nodes.push_back(op_statement(i));
        }
    }

    std::string op_statement(std::size_t i) const {
        const Graph::Op& op = g_.ops[i];
        std::string names;  // of its results: "reset gate / update gate"
        std::size_t named = 0;
        for (const auto& r : op.results)
            if (!r.name.empty() && named++ < 3) names += (names.empty() ? "" : " / ") + r.name;
        if (named > 3) names += " / …";
        // scalar constants read by the op are shown in its label: mul(·, 0.5)
        std::string call = op.op;
        if (std::any_of(op.inputs.begin(), op.inputs.end(),
                        [&](const auto& in) { return in.is_leaf && inline_constant(in.index); })) {
            call += "(";
            for (std::size_t k = 0; k < op.inputs.size(); ++k) {
                const auto& in = op.inputs[k];
                call += k ? ", " : "";
                call += in.is_leaf && inline_constant(in.index)
                            ? fmt::format("{:g}", g_.leaves[in.index].variable.item())
                            : "·";
            }
            call += ")";
        }
        std::string label;
        if (is_root(false, i))
            label += op.results.size() > 1 ? fmt::format("<I>output [{}]</I><BR/>", g_.root.output)
                                           : std::string("<I>output</I><BR/>");
        if (!names.empty())
            label += fmt::format("<FONT POINT-SIZE=\"13\"><B>{}</B></FONT>{}<BR/>{}", html(names),
                                 kGap, html(call));
        else label += html(call);
        const Fill fill = opt_.color_by_grad ? grad_fill(scale_, op.grad_norm) : Fill{};
        if (opt_.show_shapes) label += small(results_text(op.results), fill.dark);
        if (opt_.color_by_grad && op.grad_norm >= 0)
            label += small(norm_text(op.grad_norm), fill.dark);
        if (opt_.show_sites && !op.site.empty()) label += small(op.site, fill.dark, 8);

        std::string style = "shape=box, style=\"rounded,filled\"";
        if (opt_.color_by_grad) style += ", " + fill.attributes();
        else if (is_root(false, i)) style += ", fillcolor=\"#f9d5c0\"";
        else if (!names.empty()) style += ", fillcolor=\"#fff0c2\"";
        else style += ", fillcolor=\"#eaf0fa\"";
        if (!names.empty()) style += ", penwidth=1.6";
        if (is_root(false, i)) style += ", peripheries=2";
        return fmt::format("{} [label=<{}>, {}];", op_node(i), label, style);
    }

    std::string leaf_statement(std::size_t j) const {
        const Graph::Leaf& leaf = g_.leaves[j];
        auto it = names_.find(leaf.variable.impl());
        const std::string& name = it != names_.end() ? it->second : leaf.value.name;
        const bool parameter = leaf.variable.requires_grad();
        std::string label;
        if (is_root(true, j)) label += "<I>output</I><BR/>";
        if (parameter) label += fmt::format("<B>{}</B>", html(name.empty() ? "parameter" : name));
        else if (!name.empty()) label += fmt::format("input <B>{}</B>", html(name));
        else label += all_zero(leaf.variable) ? "zeros" : "input";  // zeros: an initial state
        const Fill fill =
            opt_.color_by_grad && parameter ? grad_fill(scale_, leaf.grad_norm) : Fill{};
        if (opt_.show_shapes || (opt_.color_by_grad && leaf.grad_norm >= 0)) label += kGap;
        if (opt_.show_shapes) label += small(value_text(leaf.value), fill.dark);
        if (opt_.color_by_grad && leaf.grad_norm >= 0)
            label += small(norm_text(leaf.grad_norm), fill.dark);

        std::string style = parameter ? "shape=box, style=filled" : "shape=ellipse, style=filled";
        if (opt_.color_by_grad && parameter) style += ", " + fill.attributes();
        else style += parameter ? ", fillcolor=\"#d9f0d3\"" : ", fillcolor=\"#f2f2f2\"";
        if (is_root(true, j)) style += ", peripheries=2";
        return fmt::format("{} [label=<{}>, {}];", leaf_node(j), label, style);
    }

    std::string fold_statement(const Fold& f) const {
        std::string label =
            fmt::format("<B>… {} step{} folded …</B>", f.count, f.count == 1 ? "" : "s");
        label += small(fmt::format("t = {} … {}", f.first, f.last));
        if (opt_.color_by_grad && f.max_norm >= 0)
            label += small(fmt::format("‖g‖ {} … {}", number(f.min_norm), number(f.max_norm)));
        return fmt::format(
            "{} [label=<{}>, shape=box, style=\"rounded,dashed,filled\", fillcolor=\"#ffffff\", "
            "color=\"#666666\", penwidth=1.4, fontcolor=\"#333333\"];",
            f.node, label);
    }

    void emit(const Group& grp, std::string& out, const std::string& indent,
              std::size_t& clusters) const {
        for (const auto& n : grp.nodes) out += indent + n + "\n";
        for (const auto& [step, nodes] : grp.steps) {
            out += fmt::format("{}subgraph cluster_{}{} {{\n", indent, id_, clusters++);
            out += fmt::format(
                "{}  label=<t = {}>; style=\"rounded,filled\"; fillcolor=\"#f7f7f7\"; "
                "color=\"#cccccc\";\n",
                indent, step);
            for (const auto& n : nodes) out += indent + "  " + n + "\n";
            out += indent + "}\n";
        }
        for (const auto& first : grp.children) {
            // a box holding nothing but one box is drawn as one: "LSTM / layer 0"
            const Group* child = first.get();
            std::string label = child->label;
            while (child->nodes.empty() && child->steps.empty() && child->children.size() == 1) {
                child = child->children.front().get();
                label += " / " + child->label;
            }
            out += fmt::format("{}subgraph cluster_{}{} {{\n", indent, id_, clusters++);
            out += fmt::format(
                "{}  label=<<B>{}</B>>; style=\"rounded\"; color=\"#999999\"; "
                "fillcolor=\"#ffffff\";\n",
                indent, html(label));
            emit(*child, out, indent + "  ", clusters);
            out += indent + "}\n";
        }
    }

    // Input -> op edges. Edges of folded ops go to their fold node, once each.
    void edges(std::string& out, const std::string& indent) const {
        std::set<std::pair<std::string, std::string>> folded_edges;
        for (std::size_t i = 0; i < g_.ops.size(); ++i) {
            const std::string to = op_node(i);
            for (const auto& in : g_.ops[i].inputs) {
                std::string from, label;
                bool fold_end = op_fold_[i] != nullptr;
                if (in.is_leaf) {
                    if (!leaf_drawn_[in.index]) continue;
                    from = leaf_node(in.index);
                } else {
                    from = op_node(in.index);
                    fold_end = fold_end || op_fold_[in.index];
                    const auto& results = g_.ops[in.index].results;
                    if (results.size() > 1) {
                        const std::string& name = results[in.output].name;
                        label = name.empty() ? fmt::format("[{}]", in.output) : name;
                    }
                }
                if (fold_end) {
                    if (from == to || !folded_edges.emplace(from, to).second) continue;
                    label.clear();
                }
                out += indent + from + " -> " + to;
                if (!label.empty()) out += " [label=" + quoted(label) + "]";
                out += ";\n";
            }
        }
    }
};

std::string legend(const Scale& scale) {
    // each colour stands for the norms above the value left of it, up to its own value
    std::string cells =
        fmt::format("<TD BGCOLOR=\"{}\"><FONT POINT-SIZE=\"8\">0</FONT></TD>", kZeroFill);
    for (std::size_t b = 0; b < kScale.size(); ++b)
        cells +=
            fmt::format("<TD BGCOLOR=\"{}\"><FONT POINT-SIZE=\"8\"{}>≤ {:.0e}</FONT></TD>",
                        kScale[b], b >= kFirstDark ? " COLOR=\"#ffffff\"" : "", scale.bound(b + 1));
    return fmt::format(
        "  legend [shape=plaintext, label=<<TABLE BORDER=\"0\" CELLBORDER=\"1\" "
        "CELLSPACING=\"0\" CELLPADDING=\"3\"><TR><TD COLSPAN=\"{}\">‖g‖ (log "
        "scale)</TD></TR><TR>{}</TR></TABLE>>];\n",
        kScale.size() + 1, cells);
}

std::string draw(const std::vector<std::pair<std::string, Variable>>& roots, bool titled,
                 const DotOptions& options) {
    static const std::set<std::string> rankdirs = {"TB", "LR", "BT", "RL"};
    if (!rankdirs.count(options.rankdir))
        throw ValueError(
            fmt::format("to_dot: rankdir must be TB, LR, BT or RL, got '{}'", options.rankdir));
    if (roots.empty()) throw ValueError("to_dot: no variables to draw");
    std::unordered_map<const detail::VarImpl*, std::string> names;
    for (const auto& [name, v] : options.names) {
        if (!v.defined())
            throw ValueError(fmt::format("to_dot: options.names: '{}' is undefined", name));
        names.try_emplace(v.impl(), name);
    }
    std::vector<Graph> graphs;
    for (const auto& [title, root] : roots) {
        if (!root.defined())
            throw ValueError(titled ? fmt::format("to_dot: the variable '{}' is undefined", title)
                                    : std::string("to_dot: the variable is undefined"));
        graphs.push_back(graph_of(root));
    }

    Scale scale;
    if (options.color_by_grad) {
        bool any_ops = false, any_norms = false;
        for (const auto& g : graphs) {
            for (const auto& op : g.ops) {
                scale.add(op.grad_norm);
                any_norms = any_norms || op.grad_norm >= 0;
            }
            for (const auto& leaf : g.leaves) scale.add(leaf.grad_norm);
            any_ops = any_ops || !g.ops.empty();
        }
        scale.clamp();
        if (any_ops && !any_norms)
            throw GraphError(
                "to_dot: color_by_grad: the graph holds no gradient norms; run backward with "
                "{.retain_graph = true, .keep_grad_norms = true} before drawing it");
    }

    std::string out = "digraph tapegrad {\n";
    out += fmt::format(
        "  graph [rankdir={}, fontname=\"Helvetica\", fontsize=11, nodesep=0.2, ranksep=0.3, "
        "newrank=true];\n",
        options.rankdir);
    out +=
        "  node [fontname=\"Helvetica\", fontsize=10, margin=\"0.08,0.03\", height=0.3, "
        "color=\"#5b6b8a\"];\n";
    out += "  edge [color=\"#666666\", arrowsize=0.6, fontname=\"Helvetica\", fontsize=8];\n";
    if (options.color_by_grad && !scale.empty()) out += legend(scale);
    for (std::size_t k = 0; k < graphs.size(); ++k) {
        const std::string id = titled ? fmt::format("g{}_", k) : std::string();
        Drawer drawer(graphs[k], options, scale, names, id);
        if (!titled) {
            drawer.draw(out, "  ");
            continue;
        }
        out += fmt::format("  subgraph cluster_{}title {{\n", id);
        out += fmt::format(
            "    label=<<FONT POINT-SIZE=\"18\"><B>{}</B></FONT>>; style=\"rounded\"; "
            "color=\"#333333\"; penwidth=1.5;\n",
            html(roots[k].first));
        drawer.draw(out, "    ");
        out += "  }\n";
    }
    return out + "}\n";
}

}  // namespace

std::string to_dot(const Variable& root, const DotOptions& options) {
    return draw({{std::string(), root}}, false, options);
}

std::string to_dot(const std::vector<std::pair<std::string, Variable>>& roots,
                   const DotOptions& options) {
    return draw(roots, true, options);
}

}  // namespace tapegrad
