// Draws autodiff graphs with Graphviz: a cell of your own run through the recurrent driver, and
// a 2-layer bidirectional LSTM over T = 1000 steps, folded to its first and last steps and
// coloured by the norm of each op's gradient. Writes .dot files (and .svg when Graphviz's dot
// is installed) into --out; also the RNN / LSTM / GRU structure diagram.
//   build/examples/draw_graph [--out graphs] [--steps 1000] [--keep 3] [--no-grad] [--lr]
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <tapegrad/tapegrad.hpp>

#include "examples/structure_diagram.hpp"

using namespace tapegrad;
namespace fs = std::filesystem;

// --- a cell of your own: one gate between the old state and a candidate ----------------------
class MinimalGatedCell : public Cell {
public:
    MinimalGatedCell(std::size_t in, std::size_t hidden, Generator& g)
        : Cell("MinimalGatedCell"), in_(in), hidden_(hidden) {
        const double k = 1.0 / std::sqrt(static_cast<double>(hidden));
        w = register_parameter("w", g.uniform({in + hidden, 2 * hidden}, -k, k, float32));
        b = register_parameter("b", Tensor::zeros({2 * hidden}, float32));
    }
    std::size_t input_size() const override { return in_; }
    std::size_t hidden_size() const override { return hidden_; }
    State step(const Variable& x, const State& s) override {
        const Variable& h = s[0];
        const auto zc = chunk(matmul(concat({x, h}, 1), w) + b, 2, 1);  // W [x_t, h_{t-1}] + b
        const Variable z = name(sigmoid(zc[0]), "gate z");              // z_t = σ(...)
        const Variable c = name(tanh(zc[1]), "candidate");              // c_t = tanh(...)
        return {name(lerp(h, c, z), "h_t")};  // h_t = (1 - z_t) h_{t-1} + z_t c_t
    }
    Variable w, b;

private:
    std::size_t in_, hidden_;
};
// ---------------------------------------------------------------------------------------------

// Renders file.dot to file.svg; the seconds dot took, or a negative number when it failed.
double render(const fs::path& file) {
    const auto start = std::chrono::steady_clock::now();
    const std::string cmd = fmt::format("dot -Tsvg '{}' -o '{}'", file.string(),
                                        fs::path(file).replace_extension(".svg").string());
    if (std::system(cmd.c_str()) != 0) return -1;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int main(int argc, char** argv) {
    CLI::App app{
        "Draw autodiff graphs with Graphviz: a custom cell, and a long bidirectional LSTM"};
    std::string out = "graphs";
    std::size_t steps = 1000, keep = 3;
    bool grad = true, lr = false;
    app.add_option("--out", out, "directory for the .dot and .svg files");
    app.add_option("--steps", steps, "time steps of the LSTM")->check(CLI::PositiveNumber);
    app.add_option("--keep", keep, "time steps drawn at each end of a sequence (0: all)");
    app.add_flag("--grad,!--no-grad", grad, "colour the LSTM's ops by gradient norm");
    app.add_flag("--lr", lr, "lay graphs out left to right");
    CLI11_PARSE(app, argc, argv);
    fs::create_directories(out);
    const bool have_dot = std::system("command -v dot > /dev/null 2>&1") == 0;
    if (!have_dot) fmt::print("Graphviz's dot is not installed: writing .dot files only\n");
    Generator gen(0);

    // (a) the custom cell over 3 steps: its gate and parameters, named as in the model.
    Recurrent mine(
        "MinimalGated",
        [](std::size_t in, Generator& g) { return std::make_shared<MinimalGatedCell>(in, 3, g); },
        2, {}, gen);
    const Variable h = mine.forward(Variable(gen.normal({3, 1, 2}, 0, 1, float32))).output;
    const fs::path cell_file = fs::path(out) / "custom_cell.dot";
    std::ofstream(cell_file) << to_dot(
        h, {.names = mine.named_parameters(), .rankdir = lr ? "LR" : "TB"});
    fmt::print("wrote {}\n", cell_file.string());
    if (have_dot && render(cell_file) < 0) return 1;

    // (b) a 2-layer bidirectional LSTM over `steps` steps; the steps between the first and
    // last `keep` fold into one node per layer and direction.
    LSTM lstm(4, 8, {.num_layers = 2, .bidirectional = true}, gen);
    const Variable x(gen.normal({steps, 4, 4}, 0, 1, float32), false, "x");
    const Variable y = lstm.forward(x).output;
    // A loss on the last and the first output: each direction's gradient enters at one end
    // of the sequence and fades along it, which the colours show.
    const Variable loss =
        mean(narrow(y, 0, static_cast<long>(steps) - 1, 1)) + mean(narrow(y, 0, 0, 1));
    if (grad) loss.backward({}, {.retain_graph = true, .keep_grad_norms = true});
    const std::string dot = to_dot(loss, {.names = lstm.named_parameters(),
                                          .keep_steps = keep,
                                          .color_by_grad = grad,
                                          .rankdir = lr ? "LR" : "TB"});
    const fs::path lstm_file = fs::path(out) / fmt::format("lstm_T{}.dot", steps);
    std::ofstream(lstm_file) << dot;
    fmt::print("wrote {} ({} KiB)\n", lstm_file.string(), dot.size() / 1024);
    if (have_dot) {
        const double seconds = render(lstm_file);
        if (seconds < 0) return 1;
        fmt::print("dot -Tsvg took {:.2f} s for the T = {} graph\n", seconds, steps);
    }

    // The article's comparison: one step of each built-in cell, side by side.
    const bool drawn = write_structure_diagram(out);
    fmt::print("wrote {}/structure.dot{}\n", out, drawn ? " and its .png and .svg" : "");
    return 0;
}
