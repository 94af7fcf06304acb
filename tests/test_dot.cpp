// Graphviz export (train/dot.hpp): what to_dot writes is parsed back as DOT and checked as a
// graph of labelled nodes, edges and clusters, never compared as text.
#include <doctest/doctest.h>

#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/core/graph.hpp>
#include <tapegrad/tapegrad.hpp>

#include "examples/structure_diagram.hpp"
#include "tests/test_support.hpp"

using namespace tapegrad;
using tapegrad::test::message_of;

namespace {

// ---- a DOT reader: the part of the grammar to_dot writes, with any layout -----------------

struct Dot {
    struct Node {
        std::string id, label;  // label: the text shown, lines joined by " | "
        std::map<std::string, std::string> attrs;
        std::vector<std::string> clusters;  // labels of the enclosing clusters, outermost first
    };
    struct Edge {
        std::string from, to, label;
    };
    std::map<std::string, Node> nodes;
    std::vector<Edge> edges;
    std::vector<std::string> undeclared;  // ids that appear in edges but in no node statement
    std::vector<std::vector<std::string>> clusters;  // each cluster's label path

    const Node* find(const std::string& label) const {  // the one node with this exact label
        const Node* found = nullptr;
        for (const auto& [id, n] : nodes)
            if (n.label == label) {
                if (found) FAIL("two nodes labelled '" << label << "'");
                found = &n;
            }
        return found;
    }
    std::vector<const Node*> containing(const std::string& text) const {
        std::vector<const Node*> out;
        for (const auto& [id, n] : nodes)
            if (n.label.find(text) != std::string::npos) out.push_back(&n);
        return out;
    }
    std::vector<const Node*> starting(const std::string& line) const {  // first line is `line`
        std::vector<const Node*> out;
        for (const auto& [id, n] : nodes)
            if (n.label == line || n.label.starts_with(line + " | ")) out.push_back(&n);
        return out;
    }
    const Node& at(const std::string& id) const { return nodes.at(id); }
};

class DotReader {
public:
    explicit DotReader(std::string text) : s_(std::move(text)) {}

    Dot read() {
        next();
        if (tok_ == "strict") next();
        if (tok_ != "digraph" && tok_ != "graph") FAIL("not a graph: " << tok_);
        next();
        if (tok_ != "{") next();  // the graph's name
        expect("{");
        statements({}, false);
        expect("}");
        if (kind_ != End) FAIL("text after the graph: " << tok_);
        for (const auto& e : dot_.edges)
            for (const auto& id : {e.from, e.to})
                if (!dot_.nodes.count(id)) dot_.undeclared.push_back(id);
        return std::move(dot_);
    }

private:
    enum Kind { Id, Html, Punct, End };
    std::string s_;
    std::size_t pos_ = 0;
    std::string tok_;
    Kind kind_ = End;
    Dot dot_;

    void next() {
        for (;;) {  // blanks and comments
            if (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) {
                ++pos_;
            } else if (s_.compare(pos_, 2, "//") == 0) {
                pos_ = std::min(s_.find('\n', pos_), s_.size());
            } else if (s_.compare(pos_, 2, "/*") == 0) {
                const std::size_t end = s_.find("*/", pos_ + 2);
                pos_ = end == std::string::npos ? s_.size() : end + 2;
            } else {
                break;
            }
        }
        tok_.clear();
        if (pos_ >= s_.size()) {
            kind_ = End;
            return;
        }
        const char c = s_[pos_];
        if (s_.compare(pos_, 2, "->") == 0) {
            tok_ = "->", kind_ = Punct, pos_ += 2;
        } else if (std::string("{}[]=;,").find(c) != std::string::npos) {
            tok_ = c, kind_ = Punct, ++pos_;
        } else if (c == '"') {
            kind_ = Id;
            for (++pos_; pos_ < s_.size() && s_[pos_] != '"'; ++pos_) {
                if (s_[pos_] != '\\' || pos_ + 1 == s_.size()) {
                    tok_ += s_[pos_];
                    continue;
                }
                const char e = s_[++pos_];
                if (e == 'n' || e == 'l' || e == 'r') tok_ += '\n';
                else if (e == '"' || e == '\\') tok_ += e;
                else tok_ += std::string("\\") + e;
            }
            if (pos_ >= s_.size()) FAIL("unterminated string");
            ++pos_;
        } else if (c == '<') {
            kind_ = Html;
            int depth = 0;
            const std::size_t begin = pos_;
            do {
                if (pos_ >= s_.size()) FAIL("unterminated HTML label");
                if (s_[pos_] == '<') ++depth;
                if (s_[pos_] == '>') --depth;
                ++pos_;
            } while (depth > 0);
            tok_ = html_text(s_.substr(begin + 1, pos_ - begin - 2));
        } else {
            kind_ = Id;
            while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) ||
                                        s_[pos_] == '_' || s_[pos_] == '.' || s_[pos_] == '-' ||
                                        static_cast<unsigned char>(s_[pos_]) >= 0x80))
                tok_ += s_[pos_++];
            if (tok_.empty()) FAIL("unexpected character '" << c << "'");
        }
    }

    // The text of an HTML-like label: tags dropped, <BR/> a line break, entities decoded.
    static std::string html_text(const std::string& h) {
        std::string out;
        for (std::size_t i = 0; i < h.size();) {
            if (h[i] == '<') {
                const std::size_t end = h.find('>', i);
                std::string tag = h.substr(i + 1, end - i - 1);
                for (auto& ch : tag) ch = static_cast<char>(std::toupper(ch));
                if (tag.rfind("BR", 0) == 0) out += '\n';
                i = end + 1;
            } else if (h[i] == '&') {
                const std::size_t end = h.find(';', i);
                const std::string entity = h.substr(i, end - i + 1);
                static const std::map<std::string, std::string> entities = {
                    {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}};
                if (!entities.count(entity)) FAIL("unknown entity " << entity);
                out += entities.at(entity);
                i = end + 1;
            } else {
                out += h[i++];
            }
        }
        return out;
    }

    void expect(const std::string& t) {
        if (tok_ != t) FAIL("expected '" << t << "', got '" << tok_ << "'");
        next();
    }

    std::map<std::string, std::string> attributes() {
        std::map<std::string, std::string> a;
        while (tok_ == "[") {
            next();
            while (tok_ != "]") {
                if (kind_ == End) FAIL("unexpected end of the text");
                const std::string key = tok_;
                next();
                expect("=");
                a[key] = tok_;
                next();
                if (tok_ == "," || tok_ == ";") next();
            }
            next();
        }
        return a;
    }

    static std::string joined(const std::string& text) {  // lines with text, joined by " | "
        std::string out, line;
        std::istringstream in(text);
        while (std::getline(in, line))
            if (line.find_first_not_of(' ') != std::string::npos)
                out += (out.empty() ? "" : " | ") + line;
        return out;
    }

    // Statements up to the closing brace; `clusters`: the labels of the enclosing clusters,
    // this one last when `cluster`.
    void statements(std::vector<std::string> clusters, bool cluster) {
        const std::size_t own = dot_.clusters.size();
        if (cluster) dot_.clusters.push_back(clusters);
        while (tok_ != "}") {
            if (kind_ == End) FAIL("unexpected end of the text");
            if (tok_ == ";") {
                next();
            } else if (tok_ == "subgraph") {
                next();
                std::string name;
                if (tok_ != "{") name = tok_, next();
                expect("{");
                auto inner = clusters;
                const bool is_cluster = name.rfind("cluster", 0) == 0;
                if (is_cluster) inner.push_back("");
                statements(inner, is_cluster);
                expect("}");
            } else if (tok_ == "graph" || tok_ == "node" || tok_ == "edge") {
                const std::string what = tok_;
                next();
                auto a = attributes();
                if (what == "graph" && a.count("label") && cluster)
                    set_label(clusters, own, joined(a["label"]));
            } else {
                const std::string id = tok_;
                next();
                if (tok_ == "=") {  // a graph attribute: label=...
                    next();
                    if (id == "label" && cluster) set_label(clusters, own, joined(tok_));
                    next();
                    continue;
                }
                std::vector<std::string> chain{id};
                while (tok_ == "->") {
                    next();
                    chain.push_back(tok_);
                    next();
                }
                auto a = attributes();
                if (chain.size() == 1) {
                    if (dot_.nodes.count(id)) FAIL("node " << id << " declared twice");
                    Dot::Node n{id, joined(a["label"]), a, clusters};
                    dot_.nodes[id] = n;
                } else {
                    for (std::size_t k = 0; k + 1 < chain.size(); ++k)
                        dot_.edges.push_back({chain[k], chain[k + 1], joined(a["label"])});
                }
            }
        }
        if (cluster) {  // nodes declared before the label was read
            for (auto& [id, n] : dot_.nodes)
                if (n.clusters.size() >= clusters.size() &&
                    std::equal(clusters.begin(), clusters.end() - 1, n.clusters.begin()) &&
                    n.clusters[clusters.size() - 1].empty())
                    n.clusters[clusters.size() - 1] = dot_.clusters[own].back();
        }
    }

    void set_label(std::vector<std::string>& clusters, std::size_t own, const std::string& label) {
        clusters.back() = label;
        dot_.clusters[own].back() = label;
    }
};

Dot parse(const std::string& text) { return DotReader(text).read(); }

// The edges as (label of source, label of target) pairs.
std::multiset<std::pair<std::string, std::string>> label_edges(const Dot& d) {
    std::multiset<std::pair<std::string, std::string>> out;
    for (const auto& e : d.edges) out.emplace(d.at(e.from).label, d.at(e.to).label);
    return out;
}

bool in_cluster(const Dot::Node& n, const std::vector<std::string>& path) {
    return n.clusters.size() >= path.size() &&
           std::equal(path.begin(), path.end(), n.clusters.begin());
}

Variable param(Generator& g, Shape shape) {
    return Variable(g.uniform(shape, -1, 1, float32), true);
}

// A T-step, 2-layer bidirectional LSTM (H = 4, B = 2) and its parameters.
struct DeepLSTM {
    Generator gen{5};
    LSTM lstm{2, 4, {.num_layers = 2, .bidirectional = true}, gen};
    Variable loss;
    explicit DeepLSTM(std::size_t T) {
        Variable x(gen.normal({T, 2, 2}, 0, 1, float32), false, "x");
        loss = sum(lstm.forward(x).output);
    }
};

}  // namespace

TEST_CASE("dot: the reader reads what Graphviz accepts") {
    const Dot d = parse(R"(digraph g { node [shape=box];
        a [label="one\ntwo \"q\" \\ end"]; b [label=<<B>x</B><BR/>&lt;y&gt; &amp;>]
        subgraph cluster_1 { label="box"; c; subgraph cluster_2 { graph [label=<inner>]; d } }
        a -> b -> c [label="e"]; /* comment */ d -> a })");
    CHECK(d.at("a").label == "one | two \"q\" \\ end");
    CHECK(d.at("b").label == "x | <y> &");
    CHECK(d.at("c").clusters == std::vector<std::string>{"box"});
    CHECK(d.at("d").clusters == std::vector<std::string>{"box", "inner"});
    REQUIRE(d.edges.size() == 3);
    CHECK(d.edges[1].from == "b");
    CHECK(d.edges[1].label == "e");
    CHECK(d.undeclared.empty());
}

TEST_CASE("dot: a small graph gives exactly its nodes and edges") {
    Generator g(1);
    Variable x(g.normal({2, 3}, 0, 1, float32));
    Variable W = param(g, {3, 4}), b = param(g, {4});
    Variable y = tanh(name(matmul(x, W) + b, "pre") * 0.5);
    const Dot d = parse(to_dot(y, {.names = {{"fc.weight", W}, {"fc.bias", b}}}));

    CHECK(d.nodes.size() == 7);
    std::set<std::string> labels;
    for (const auto& [id, n] : d.nodes) labels.insert(n.label);
    CHECK(labels == std::set<std::string>{"input | [2,3] f32", "fc.weight | [3,4] f32",
                                          "fc.bias | [4] f32", "matmul | [2,4] f32",
                                          "pre | add | [2,4] f32", "mul(·, 0.5) | [2,4] f32",
                                          "output | tanh | [2,4] f32"});
    CHECK(label_edges(d) == std::multiset<std::pair<std::string, std::string>>{
                                {"input | [2,3] f32", "matmul | [2,4] f32"},
                                {"fc.weight | [3,4] f32", "matmul | [2,4] f32"},
                                {"matmul | [2,4] f32", "pre | add | [2,4] f32"},
                                {"fc.bias | [4] f32", "pre | add | [2,4] f32"},
                                {"pre | add | [2,4] f32", "mul(·, 0.5) | [2,4] f32"},
                                {"mul(·, 0.5) | [2,4] f32", "output | tanh | [2,4] f32"}});
    CHECK(d.clusters.empty());  // no scopes were open
    CHECK(d.find("output | tanh | [2,4] f32")->attrs.at("peripheries") == "2");

    // Without options.names, a parameter shows its own name; call sites on request.
    W.set_name("W");
    const Dot sites = parse(to_dot(y, {.show_shapes = false, .show_sites = true}));
    REQUIRE(sites.find("W"));
    CHECK(sites.find("parameter"));  // b has no name
    const auto matmuls = sites.containing("matmul");
    REQUIRE(matmuls.size() == 1);
    CHECK(matmuls[0]->label.find("test_dot.cpp:") != std::string::npos);
}

TEST_CASE("dot: labels with quotes, backslashes and markup survive") {
    Generator g(2);
    const std::string odd = "w \"quoted\" \\ <b> & ‖x‖";
    Variable w = param(g, {2, 4});
    auto parts = chunk(w * 2.0, 2, 1);
    name(parts[1], "half \"1\" \\n");
    Variable y = sum(parts[0] * parts[1]);
    const Dot d = parse(to_dot({{"title \"t\" <x>", y}}, {.names = {{odd, w}}}));
    CHECK(d.find(odd + " | [2,4] f32"));
    CHECK(d.clusters.at(0).at(0) == "title \"t\" <x>");
    bool named_edge = false;
    for (const auto& e : d.edges) named_edge = named_edge || e.label == "half \"1\" \\n";
    CHECK(named_edge);
    CHECK(d.containing("half \"1\" \\n").size() == 1);  // chunk's label names the result
}

TEST_CASE("dot: an LSTM step names its gates, parameters and scopes") {
    Generator g(3);
    LSTM lstm(3, 4, {}, g);
    Variable x(g.normal({2, 2, 3}, 0, 1, float32));
    const Variable out = lstm.forward(x).output;
    const Dot d = parse(to_dot(out, {.names = lstm.named_parameters()}));

    for (const char* gate : {"input gate", "forget gate", "output gate", "candidate C̃"}) {
        const auto nodes = d.containing(gate);
        REQUIRE_MESSAGE(nodes.size() == 2, gate);  // one per time step
        for (const auto* n : nodes) {
            CHECK(n->label ==
                  std::string(gate) + " | " +
                      (std::string(gate).starts_with("candidate") ? "tanh" : "sigmoid") +
                      " | [2,4] f32");
            CHECK((in_cluster(*n, {"LSTM / layer 0", "forward", "t = 0"}) ||
                   in_cluster(*n, {"LSTM / layer 0", "forward", "t = 1"})));
        }
    }
    CHECK(d.containing("C_t").size() == 2);
    CHECK(d.containing("h_t").size() == 2);
    for (const char* p : {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}) {
        const auto nodes = d.containing(p);
        REQUIRE_MESSAGE(nodes.size() == 1, p);
        CHECK(in_cluster(*nodes[0], {"LSTM / layer 0", "forward"}));  // where all its users are
    }
    // The forget gate of step 1 scales C_{t-1} of step 0: f * c reads both.
    int forget_edges = 0;
    for (const auto& e : d.edges) {
        const auto &from = d.at(e.from), &to = d.at(e.to);
        if (from.label.starts_with("forget gate") &&
            in_cluster(from, {"LSTM / layer 0", "forward", "t = 1"}))
            forget_edges += to.label.starts_with("mul") &&
                            in_cluster(to, {"LSTM / layer 0", "forward", "t = 1"});
    }
    CHECK(forget_edges == 1);
    bool carried = false;  // C_t of step 0 feeds step 1
    for (const auto& e : d.edges)
        carried = carried || (d.at(e.from).label.starts_with("C_t") &&
                              in_cluster(d.at(e.from), {"LSTM / layer 0", "forward", "t = 0"}) &&
                              in_cluster(d.at(e.to), {"LSTM / layer 0", "forward", "t = 1"}));
    CHECK(carried);
    // chunk's four results are told apart on the edges.
    std::set<std::string> chunk_edges;
    for (const auto& e : d.edges)
        if (d.at(e.from).label.starts_with("chunk") &&
            in_cluster(d.at(e.from), {"LSTM / layer 0", "forward", "t = 0"}))
            chunk_edges.insert(e.label);
    CHECK(chunk_edges == std::set<std::string>{"[0]", "[1]", "[2]", "[3]"});
}

TEST_CASE("dot: steps past the first and last keep_steps fold into one node per group") {
    // h_t = tanh(h_{t-1} * w + c_t), c_t a data input per step
    Variable w(Tensor::full({3}, 0.5, float32), true, "w");
    Variable h(Tensor::zeros({1, 3}, float32));
    {
        const GraphScope loop("loop");
        for (long t = 0; t < 10; ++t) {
            const GraphScope step("", t);
            h = tanh(h * w +
                     Variable(Tensor::full({1, 3}, 0.1, float32), false, fmt::format("c{}", t)));
        }
    }
    const Dot d = parse(to_dot(h, {.keep_steps = 2}));
    std::set<std::string> inputs, steps;
    for (const auto& [id, n] : d.nodes)
        if (n.label.starts_with("input c")) inputs.insert(n.label.substr(6, 2));
    for (const auto& c : d.clusters)
        if (c.back().starts_with("t = ")) steps.insert(c.back());
    CHECK(inputs == std::set<std::string>{"c0", "c1", "c8", "c9"});  // c2..c7 only feed folded ops
    CHECK(steps == std::set<std::string>{"t = 0", "t = 1", "t = 8", "t = 9"});
    const auto folds = d.containing("steps folded");
    REQUIRE(folds.size() == 1);
    CHECK(folds[0]->label == "… 6 steps folded … | t = 2 … 7");
    CHECK(folds[0]->clusters == std::vector<std::string>{"loop"});
    // the chain runs through it: step 1 -> fold -> step 8, each edge once; w feeds it too
    std::multiset<std::pair<std::string, std::string>> around;
    for (const auto& e : d.edges) {
        if (e.to == folds[0]->id) around.emplace(d.at(e.from).label, "fold");
        if (e.from == folds[0]->id) around.emplace("fold", d.at(e.to).label);
    }
    CHECK(around ==
          std::multiset<std::pair<std::string, std::string>>{
              {"tanh | [1,3] f32", "fold"}, {"w | [3] f32", "fold"}, {"fold", "mul | [1,3] f32"}});
    CHECK(d.nodes.size() == 1 + 1 + 4 + 4 * 3 + 1);  // w, h_0, c_t, 4 steps of 3 ops, the fold

    const Dot all = parse(to_dot(h, {.keep_steps = 0}));
    CHECK(all.containing("steps folded").empty());
    CHECK(all.containing("input c").size() == 10);
    const Dot flat = parse(to_dot(h, {.group = false, .keep_steps = 2}));
    CHECK(flat.clusters.empty());
    CHECK(flat.nodes.size() == d.nodes.size());
}

TEST_CASE("dot: a 2-layer bidirectional LSTM over T = 1000 draws like T = 20, and renders") {
    DeepLSTM long_run(1000), short_run(20);
    const std::string text = to_dot(long_run.loss, {.names = long_run.lstm.named_parameters()});
    const Dot d = parse(text);
    const Dot s = parse(to_dot(short_run.loss, {.names = short_run.lstm.named_parameters()}));
    CHECK(d.undeclared.empty());
    CHECK(d.nodes.size() == s.nodes.size());  // bounded: only 6 steps per group are drawn
    CHECK(d.edges.size() == s.edges.size());
    CHECK(d.nodes.size() < 500);
    MESSAGE("T = 1000: ", d.nodes.size(), " nodes, ", d.edges.size(), " edges");

    // 4 directions and 2 layers (their concats) fold 994 steps each.
    const auto folds = d.containing("994 steps folded");
    CHECK(folds.size() == 6);
    CHECK(d.containing("steps folded").size() == 6);
    const std::set<std::string> drawn = {"t = 0",   "t = 1",   "t = 2",
                                         "t = 997", "t = 998", "t = 999"};
    for (const auto& c : d.clusters)
        if (c.back().starts_with("t = ")) CHECK_MESSAGE(drawn.count(c.back()), c.back());
    for (const char* p : {"weight_hh_l0", "weight_ih_l1", "weight_hh_l1_reverse", "bias_hh_l1"})
        CHECK_MESSAGE(d.starting(p).size() == 1, p);

    // Folded edges are drawn once.
    auto folded = [&](const std::string& id) {
        return d.at(id).label.find("steps folded") != std::string::npos;
    };
    std::set<std::pair<std::string, std::string>> fold_edges;
    for (const auto& e : d.edges)
        if (folded(e.from) || folded(e.to)) CHECK(fold_edges.emplace(e.from, e.to).second);
    CHECK(fold_edges.size() > 6 * 2);

    // Each direction's drawn steps stay chained: t -> t +- 1 among the drawn steps, into the
    // fold node and out of it.
    auto linked = [&](const std::vector<std::string>& group, const std::string& from,
                      const std::string& to) {
        for (const auto& e : d.edges) {
            const auto &a = d.at(e.from), &b = d.at(e.to);
            auto at = [&](const Dot::Node& n, const std::string& where) {
                if (where == "fold")
                    return n.label.find("steps folded") != std::string::npos && n.clusters == group;
                auto path = group;
                path.push_back(where);
                return in_cluster(n, path);
            };
            if (at(a, from) && at(b, to)) return true;
        }
        return false;
    };
    for (const char* layer : {"layer 0", "layer 1"}) {
        const std::vector<std::string> fwd{"LSTM", layer, "forward"}, rev{"LSTM", layer, "reverse"};
        CHECK(linked(fwd, "t = 0", "t = 1"));
        CHECK(linked(fwd, "t = 2", "fold"));
        CHECK(linked(fwd, "fold", "t = 997"));
        CHECK(linked(fwd, "t = 998", "t = 999"));
        CHECK(linked(rev, "t = 999", "t = 998"));
        CHECK(linked(rev, "t = 997", "fold"));
        CHECK(linked(rev, "fold", "t = 2"));
        CHECK(linked(rev, "t = 1", "t = 0"));
    }

    // dot renders it (no timing asserted here; examples/draw_graph prints it).
    REQUIRE_MESSAGE(std::system("command -v dot > /dev/null 2>&1") == 0,
                    "Graphviz's dot is not installed (apt-get install graphviz)");
    const auto dir = std::filesystem::temp_directory_path() /
                     fmt::format("tapegrad_dot_{}", static_cast<long>(::getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "lstm.dot") << text;
    const std::string cmd =
        fmt::format("dot -Tsvg '{}' -o '{}' 2> '{}'", (dir / "lstm.dot").string(),
                    (dir / "lstm.svg").string(), (dir / "err.txt").string());
    const int rc = std::system(cmd.c_str());
    std::ifstream err(dir / "err.txt");
    const std::string errors((std::istreambuf_iterator<char>(err)), {});
    CHECK_MESSAGE(rc == 0, errors);
    REQUIRE(std::filesystem::exists(dir / "lstm.svg"));
    std::ifstream svg(dir / "lstm.svg");
    const std::string rendered((std::istreambuf_iterator<char>(svg)), {});
    CHECK(rendered.find("<svg") != std::string::npos);
    CHECK(rendered.find("weight_hh_l1_reverse") != std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_CASE("dot: color_by_grad fills ops by their gradient norm") {
    Generator g(4);
    LSTM lstm(2, 3, {.dtype = float64}, g);
    Variable x(g.normal({6, 2, 2}, 0, 1, float64));
    Variable loss = sum(lstm.forward(x).output * 3.0);

    loss.backward({}, {.retain_graph = true});
    CHECK(message_of([&] {
              to_dot(loss, {.color_by_grad = true});
          }).starts_with("to_dot: color_by_grad: the graph holds no gradient norms"));
    lstm.zero_grad();

    loss.backward({}, {.retain_graph = true, .keep_grad_norms = true});
    const Dot d = parse(
        to_dot(loss, {.names = lstm.named_parameters(), .keep_steps = 0, .color_by_grad = true}));
    const std::set<std::string> scale = {"#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c",
                                         "#fc4e2a", "#e31a1c", "#bd0026", "#800026"};
    std::set<std::string> fills;
    std::size_t ops = 0;
    for (const auto& [id, n] : d.nodes) {
        if (id.find("op") == std::string::npos) continue;
        ++ops;
        CHECK_MESSAGE(n.label.find("‖g‖ ") != std::string::npos, n.label);
        const std::string& fill = n.attrs.at("fillcolor");
        if (scale.count(fill)) fills.insert(fill);
        else CHECK_MESSAGE(n.label.ends_with("‖g‖ 0"), n.label);  // grey: no gradient at all
    }
    CHECK(ops > 20);
    CHECK(fills.size() >= 4);  // norms spread over the scale
    // The forget gate of step 0 scales c_0 = 0: its gradient is exactly zero.
    bool zero_forget = false;
    for (const auto* n : d.starting("forget gate"))
        zero_forget = zero_forget || (n->clusters.back() == "t = 0" && n->label.ends_with("‖g‖ 0"));
    CHECK(zero_forget);
    const auto w = d.starting("weight_hh_l0");
    REQUIRE(w.size() == 1);
    CHECK(scale.count(w[0]->attrs.at("fillcolor")));
    CHECK(w[0]->label.find("‖g‖ ") != std::string::npos);
    CHECK(d.containing("‖g‖ (log scale)").size() == 1);  // the legend
    // the root's gradient is 1
    REQUIRE(d.starting("output").size() == 1);
    CHECK(d.starting("output")[0]->label.find("‖g‖ 1.0e+00") != std::string::npos);
}

TEST_CASE("dot: several graphs side by side") {
    Generator g(6);
    RNN rnn(2, 3, {}, g);
    LSTM lstm(2, 3, {}, g);
    GRU gru(2, 3, {}, g);
    Variable x(g.normal({1, 1, 2}, 0, 1, float32));
    const Dot d = parse(to_dot({{"RNN", rnn.forward(x).output},
                                {"LSTM", lstm.forward(x).output},
                                {"GRU", gru.forward(x).output}},
                               {.names = lstm.named_parameters()}));
    std::set<std::string> titles;
    for (const auto& [id, n] : d.nodes) {
        REQUIRE(!n.clusters.empty());
        titles.insert(n.clusters[0]);
    }
    CHECK(titles == std::set<std::string>{"RNN", "LSTM", "GRU"});
    for (const auto& e : d.edges) CHECK(d.at(e.from).clusters[0] == d.at(e.to).clusters[0]);
    for (const char* gate : {"reset gate", "update gate", "candidate h̃"})
        for (const auto* n : d.containing(gate)) CHECK(n->clusters[0] == "GRU");
    CHECK(d.containing("update gate").size() >= 1);
    CHECK(d.containing("forget gate").at(0)->clusters[0] == "LSTM");
    CHECK(d.starting("weight_hh_l0").size() == 1);  // only the LSTM's were named
    CHECK(d.starting("output").size() == 3);
}

TEST_CASE("dot: the structure diagram draws RNN, LSTM and GRU side by side") {
    REQUIRE_MESSAGE(std::system("command -v dot > /dev/null 2>&1") == 0,
                    "Graphviz's dot is not installed (apt-get install graphviz)");
    const auto dir = std::filesystem::temp_directory_path() /
                     fmt::format("tapegrad_structure_{}", static_cast<long>(::getpid()));
    REQUIRE(write_structure_diagram(dir));
    for (const char* file : {"structure.dot", "structure.png", "structure.svg"})
        CHECK_MESSAGE(std::filesystem::file_size(dir / file) > 0, file);
    std::ifstream in(dir / "structure.dot");
    const Dot d = parse(std::string((std::istreambuf_iterator<char>(in)), {}));
    std::set<std::string> titles;
    for (const auto& [id, n] : d.nodes) titles.insert(n.clusters.at(0));
    CHECK(titles == std::set<std::string>{"RNN: one recurrent layer", "LSTM: 3 gates + cell state",
                                          "GRU: 2 gates"});
    for (const char* gate : {"input gate", "forget gate", "output gate"})
        CHECK(d.starting(gate).at(0)->clusters.at(0) == "LSTM: 3 gates + cell state");
    CHECK(d.starting("reset gate / update gate").at(0)->clusters.at(0) == "GRU: 2 gates");
    CHECK(d.starting("weight_hh_l0").size() == 3);
    std::filesystem::remove_all(dir);
}

TEST_CASE("dot: errors name to_dot") {
    Generator g(7);
    Variable w = param(g, {2});
    Variable y = sum(w * w);
    CHECK(message_of([&] { to_dot(Variable()); }) == "to_dot: the variable is undefined");
    CHECK(message_of([&] {
              to_dot({{"LSTM", Variable()}});
          }) == "to_dot: the variable 'LSTM' is undefined");
    CHECK_THROWS_AS(to_dot(y, {.rankdir = "up"}), ValueError);
    CHECK(message_of([&] { to_dot(y, {.rankdir = "up"}); }).starts_with("to_dot: rankdir"));
    CHECK_THROWS_AS(to_dot(y, {.names = {{"w", Variable()}}}), ValueError);
    CHECK_THROWS_AS(to_dot(std::vector<std::pair<std::string, Variable>>{}), ValueError);
    y.backward();  // frees the graph
    CHECK_THROWS_AS(to_dot(y), GraphError);
    CHECK(message_of([&] { to_dot(y); }).find("retain_graph") != std::string::npos);
    // a leaf is a graph of one node
    const Dot leaf = parse(to_dot(w, {.names = {{"w", w}}}));
    REQUIRE(leaf.nodes.size() == 1);
    CHECK(leaf.nodes.begin()->second.label == "output | w | [2] f32");
}
