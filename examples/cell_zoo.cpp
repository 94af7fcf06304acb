// The article's three cells beside today's (minGRU, minLSTM, IndRNN, a selective state space,
// sLSTM) on the demo's protocol: the adding problem at the lengths given, and, with --text, a
// character-level language model, each cell with the same wall-time budget. Prints a Markdown
// table per task: parameters, ms per training step, steps and seconds to solve, final loss;
// with --out DIR also writes them to DIR/cell_zoo.md, every evaluation to DIR/cell_zoo.csv and
// the held-out loss against wall time to DIR/cell_zoo.png (gnuplot).
//
//   build/examples/cell_zoo --length 100 --length 1000 --seconds 60 --text input.txt --out dir
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <tapegrad/tapegrad.hpp>

#include "examples/adding_problem.hpp"
#include "examples/compare_cells.hpp"

using namespace tapegrad;
using Clock = std::chrono::steady_clock;

namespace {

using LayerMaker =
    std::function<std::shared_ptr<Recurrent>(std::size_t in, std::size_t H, Generator&)>;

template <class C, class... Extra>
LayerMaker scan_layer(const char* name, Extra... extra) {
    return [name, extra...](std::size_t in, std::size_t H, Generator& gen) {
        return std::make_shared<Recurrent>(
            name,
            [H, extra...](std::size_t i, Generator& g) {
                return std::make_shared<C>(i, H, g, float32, extra...);
            },
            in, RecurrentOptions{}, gen);
    };
}

struct Zoo {
    std::string name;
    LayerMaker make;
};

std::vector<Zoo> zoo() {
    return {
        {"RNN", [](auto in, auto H,
                   auto& g) { return std::make_shared<RNN>(in, H, RecurrentOptions{}, g); }},
        {"LSTM",
         [](auto in, auto H, auto& g) {
             return std::make_shared<LSTM>(in, H, RecurrentOptions{.init = {.forget_bias = 1}}, g);
         }},
        {"GRU", [](auto in, auto H,
                   auto& g) { return std::make_shared<GRU>(in, H, RecurrentOptions{}, g); }},
        {"minGRU", scan_layer<MinGRUCell>("minGRU", MinGRUOptions{})},
        {"minGRU (log-space)", scan_layer<MinGRUCell>("minGRU", MinGRUOptions{.log_space = true})},
        {"minLSTM", scan_layer<MinLSTMCell>("minLSTM")},
        {"IndRNN", scan_layer<IndRNNCell>("IndRNN")},
        {"selective SSM", scan_layer<SelectiveSSMCell>("SelectiveSSM")},
        {"sLSTM", scan_layer<SLSTMCell>("sLSTM")},
    };
}

// Embedding (or the raw input) -> recurrent layer -> its last state, or every step, -> head.
struct Model : Module {
    std::shared_ptr<Embedding> embed;
    std::shared_ptr<Recurrent> rnn;
    std::shared_ptr<Linear> head;
    Model(const LayerMaker& make, std::size_t vocab, std::size_t in, std::size_t H, std::size_t out,
          Generator& gen)
        : Module("Model") {
        if (vocab) embed = register_module("embed", std::make_shared<Embedding>(vocab, in, gen));
        rnn = register_module("rnn", make(in, H, gen));
        head = register_module("head", std::make_shared<Linear>(H, out, gen));
    }
    Variable last(const Variable& x) { return (*head)(squeeze(rnn->forward(x).states[0], 0)); }
    Variable every(const Tensor& ids) {  // ids [T, B] -> logits [T*B, vocab]
        const Variable out = rnn->forward(embed->forward(ids)).output;
        return (*head)(reshape(out, Shape{out.shape()[0] * out.shape()[1], out.shape()[2]}));
    }
};

struct Point {
    double seconds;  // training wall time so far
    std::size_t step;
    double loss;  // held out
};

struct Row {
    std::size_t steps = 0;
    double ms_per_step = 0, solved_s = -1;
    std::size_t solved_step = 0;
    double final_loss = 0;
    std::vector<Point> curve;
};

// One optimizer step on `loss`, clipped to norm 1; returns the loss.
double update(Adam& opt, const Variable& loss) {
    opt.zero_grad();
    loss.backward();
    clip_grad_norm(opt.parameters(), 1.0);
    opt.step();
    return loss.item();
}

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Trains until `budget` seconds of wall time pass; `step` returns the batch loss, `eval` the
// held-out loss (every `every` steps, not counted in the budget), `solved` says when it is enough.
Row train_for(double budget, std::size_t every, const std::function<double()>& step,
              const std::function<double()>& eval, const std::function<bool(double)>& solved) {
    Row r;
    double spent = 0;
    std::vector<double> step_ms;
    while (spent < budget) {
        const auto t0 = Clock::now();
        step();
        const double s = seconds_since(t0);
        spent += s;
        step_ms.push_back(1e3 * s);
        ++r.steps;
        if (r.steps % every == 0 || spent >= budget) {
            r.final_loss = eval();
            r.curve.push_back({spent, r.steps, r.final_loss});
            if (r.solved_s < 0 && solved(r.final_loss)) {
                r.solved_s = spent;
                r.solved_step = r.steps;
            }
        }
    }
    std::nth_element(step_ms.begin(), step_ms.begin() + step_ms.size() / 2, step_ms.end());
    r.ms_per_step = step_ms[step_ms.size() / 2];
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::size_t> lengths{100};
    double seconds = 30;
    std::size_t hidden = 64, batch = 64;
    std::string text, out_dir;
    std::vector<std::string> only;
    CLI::App app("RNN, LSTM, GRU and today's recurrent cells, each with the same wall-time budget");
    app.add_option("--length", lengths, "adding-problem lengths T")->capture_default_str();
    app.add_option("--seconds", seconds, "wall-time budget per cell and task")
        ->capture_default_str();
    app.add_option("--hidden", hidden)->capture_default_str();
    app.add_option("--batch", batch)->capture_default_str();
    app.add_option("--text", text,
                   "a text file for the character-level model (e.g. tinyshakespeare)");
    app.add_option("--cells", only, "only these cells (names as printed)");
    app.add_option("--out", out_dir, "also write cell_zoo.md, .csv and .png into this folder");
    CLI11_PARSE(app, argc, argv);

    std::string report, csv = "task,cell,seconds,step,loss\n";
    std::vector<std::string> tasks;  // one plot panel each
    auto record = [&](const std::string& task, const std::string& cell, const Row& r) {
        for (const Point& p : r.curve)
            csv += fmt::format("{},{},{:.3f},{},{:.6g}\n", task, cell, p.seconds, p.step, p.loss);
    };
    auto emit = [&](const std::string& s) {
        fmt::print("{}", s);
        report += s;
    };
    auto chosen = [&](const Zoo& z) {
        return only.empty() || std::find(only.begin(), only.end(), z.name) != only.end();
    };

    for (const std::size_t T : lengths) {
        Generator data_gen(1);
        const AddingBatch test = adding_batch(T, 512, data_gen);
        std::vector<std::vector<std::string>> rows;
        for (const Zoo& z : zoo()) {
            if (!chosen(z)) continue;
            Generator gen(0), batches(2);
            Model model(z.make, 0, 2, hidden, 1, gen);
            Adam opt({param_group(model)}, {.lr = 2e-3});
            const Row r = train_for(
                seconds, 50,
                [&] {
                    const AddingBatch b = adding_batch(T, batch, batches);
                    return update(opt, mse_loss(model.last(Variable(b.x)), Variable(b.y)));
                },
                [&] {
                    NoGradGuard no_grad;
                    return mse_loss(model.last(Variable(test.x)), Variable(test.y)).item();
                },
                [](double mse) { return mse < 0.01; });
            rows.push_back({z.name, std::to_string(model.parameter_count()),
                            fmt::format("{:.2f}", r.ms_per_step), std::to_string(r.steps),
                            r.solved_s < 0
                                ? "no"
                                : fmt::format("step {}, {:.1f} s", r.solved_step, r.solved_s),
                            fmt::format("{:.4f}", r.final_loss)});
            record(fmt::format("adding T={}", T), z.name, r);
            fmt::print(stderr, "adding T={} {}: done\n", T, z.name);
        }
        emit(
            fmt::format("\nAdding problem, T = {}, H = {}, batch {}, Adam 2e-3, clip 1, {} s per "
                        "cell (solved: test MSE < 0.01; predicting 1.0 scores 0.1667)\n\n",
                        T, hidden, batch, seconds));
        tasks.push_back(fmt::format("adding T={}", T));
        emit(markdown_table({"cell", "parameters", "ms/step", "steps", "solved", "test MSE"}, rows,
                            {1, 2, 3, 5}));
    }

    if (!text.empty()) {
        std::ifstream in(text, std::ios::binary);
        if (!in) {
            fmt::print(stderr, "cell_zoo: cannot read {}\n", text);
            return 1;
        }
        const std::string chars((std::istreambuf_iterator<char>(in)), {});
        std::vector<std::int64_t> ids(chars.size());
        std::vector<int> index(256, -1);
        std::size_t vocab = 0;
        for (std::size_t i = 0; i < chars.size(); ++i) {
            auto& slot = index[static_cast<unsigned char>(chars[i])];
            if (slot < 0) slot = static_cast<int>(vocab++);
            ids[i] = slot;
        }
        const std::size_t split = ids.size() * 9 / 10, seq = 64;
        // (inputs [seq, B], targets [seq*B]) windows starting at `starts`
        auto windows = [&](const std::vector<std::size_t>& starts) {
            const std::size_t B = starts.size();
            std::vector<std::int64_t> x(seq * B), y(seq * B);
            for (std::size_t t = 0; t < seq; ++t)
                for (std::size_t b = 0; b < B; ++b) {
                    x[t * B + b] = ids[starts[b] + t];
                    y[t * B + b] = ids[starts[b] + t + 1];
                }
            return std::pair{Tensor::from(x, {seq, B}), Tensor::from(y, {seq * B})};
        };
        std::vector<std::size_t> val_starts;
        for (std::size_t s = split; s + seq + 1 < ids.size() && val_starts.size() < 256; s += seq)
            val_starts.push_back(s);
        const auto [val_x, val_y] = windows(val_starts);
        std::vector<std::vector<std::string>> rows;
        for (const Zoo& z : zoo()) {
            if (!chosen(z)) continue;
            Generator gen(0), picks(3);
            Model model(z.make, vocab, 32, 128, vocab, gen);
            Adam opt({param_group(model)}, {.lr = 3e-3});
            const Row r = train_for(
                seconds, 100,
                [&] {
                    std::vector<std::size_t> starts(32);
                    for (auto& s : starts) s = picks.below(split - seq - 1);
                    const auto [x, y] = windows(starts);
                    return update(opt, cross_entropy(model.every(x), y));
                },
                [&] {
                    NoGradGuard no_grad;
                    return cross_entropy(model.every(val_x), val_y).item();
                },
                [](double) { return false; });
            rows.push_back({z.name, std::to_string(model.parameter_count()),
                            fmt::format("{:.2f}", r.ms_per_step), std::to_string(r.steps),
                            fmt::format("{:.3f}", r.final_loss)});
            record("char LM", z.name, r);
            fmt::print(stderr, "char LM {}: done\n", z.name);
        }
        emit(
            fmt::format("\nCharacter-level language model on {} ({} characters, vocabulary {}): "
                        "embedding 32, H = 128, windows of {}, batch 32, Adam 3e-3, {} s per cell; "
                        "validation loss in nats per character\n\n",
                        text.substr(text.find_last_of('/') + 1), ids.size(), vocab, seq, seconds));
        tasks.push_back("char LM");
        emit(markdown_table({"cell", "parameters", "ms/step", "steps", "validation nats"}, rows,
                            {1, 2, 3, 4}));
    }
    if (out_dir.empty()) return 0;
    std::filesystem::create_directories(out_dir);
    std::ofstream(out_dir + "/cell_zoo.md") << report;
    std::ofstream(out_dir + "/cell_zoo.csv") << csv;
    // one panel per task: held-out loss against wall time, a line per cell
    std::string gp = fmt::format(
        "set terminal pngcairo size {},420 font 'sans,9'\nset output 'cell_zoo.png'\n"
        "set datafile separator ','\nset logscale y\nset grid\nset key outside right\n"
        "set xlabel 'training wall time (s)'\nset multiplot layout 1,{}\n",
        480 * tasks.size() + 240, tasks.size());
    for (const std::string& task : tasks) {
        gp += fmt::format("set title '{}'\nset ylabel '{}'\nplot ", task,
                          task == "char LM" ? "validation nats" : "test MSE");
        for (std::size_t i = 0; const Zoo& z : zoo()) {
            if (!chosen(z)) continue;
            gp += fmt::format(
                "{}'cell_zoo.csv' using (strcol(1) eq '{}' && strcol(2) eq '{}' ? "
                "$3 : 1/0):5 with linespoints pointsize 0.4 title '{}'",
                i++ ? ", " : "", task, z.name, z.name);
        }
        gp += "\n";
    }
    std::ofstream(out_dir + "/cell_zoo.gp") << gp << "unset multiplot\n";
    const std::string cmd = fmt::format("cd '{}' && gnuplot cell_zoo.gp", out_dir);
    if (std::system("command -v gnuplot >/dev/null 2>&1") != 0 || std::system(cmd.c_str()) != 0)
        fmt::print(stderr, "cell_zoo: no plot (gnuplot missing or failed)\n");
    return 0;
}
