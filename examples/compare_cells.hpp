// The pieces of examples/compare_cells.cpp that the tests use: the model (a recurrent layer and
// a linear head on its last hidden state), one training step, the test-set evaluation and the
// Markdown table writer. Header-only, as examples/adding_problem.hpp.
#pragma once

#include <algorithm>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

#include "examples/adding_problem.hpp"

namespace tapegrad {

enum class CellKind { rnn, lstm, gru };
inline const char* cell_name(CellKind kind) {
    return kind == CellKind::rnn ? "RNN" : kind == CellKind::lstm ? "LSTM" : "GRU";
}

struct ModelOptions {
    CellKind kind = CellKind::lstm;
    std::size_t hidden = 64;
    LSTMInit lstm_init = {.forget_bias = 1.0};  // LSTM only
    DType dtype = float32;
};

// x [T, B, 2] -> the cell's last hidden state h_T [B, H] -> a linear head -> [B, 1].
class AddingModel : public Module {
public:
    AddingModel(const ModelOptions& options, Generator& gen)
        : Module("AddingModel"), hidden_(options.hidden) {
        RecurrentOptions one_layer{.dtype = options.dtype};
        switch (options.kind) {
            case CellKind::rnn: rnn = std::make_shared<RNN>(2, hidden_, one_layer, gen); break;
            case CellKind::lstm:
                one_layer.init = options.lstm_init;
                rnn = std::make_shared<LSTM>(2, hidden_, one_layer, gen);
                break;
            case CellKind::gru: rnn = std::make_shared<GRU>(2, hidden_, one_layer, gen); break;
        }
        register_module("rnn", rnn);
        head = register_module("head", std::make_shared<Linear>(hidden_, 1, gen, options.dtype));
    }
    Variable forward(const Variable& x) {
        const Variable h_last = rnn->forward(x).states[0];  // [1, B, H]
        return (*head)(reshape(h_last, Shape{x.shape()[1], hidden_}));
    }
    std::shared_ptr<Recurrent> rnn;
    std::shared_ptr<Linear> head;

private:
    std::size_t hidden_;
};

// CPU time of the calling thread: what a step costs on one core, however many threads share
// the machine.
inline double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct TrainOptions {
    double lr = 2e-3;
    double clip = 1.0;  // max gradient norm
};

struct StepResult {
    double loss = 0;         // training MSE of the batch, before the update
    double grad_norm = 0;    // before clipping
    double fwd_bwd_cpu = 0;  // thread CPU seconds of forward + backward
};

// A model with its Adam optimizer, recording on its own tape (released after every step).
class Trainer {
public:
    Trainer(const ModelOptions& model_options, const TrainOptions& options, Generator& gen)
        : model(model_options, gen),
          optimizer(Params(model), AdamOptions{.lr = options.lr}),
          options_(options) {}

    StepResult step(const AddingBatch& batch) {
        TapeScope scope(tape_);
        StepResult r;
        const double t0 = thread_cpu_seconds();
        {
            optimizer.zero_grad();
            const Variable loss = mse_loss(model.forward(Variable(batch.x)), Variable(batch.y));
            loss.backward();
            r.loss = loss.item();
        }
        r.fwd_bwd_cpu = thread_cpu_seconds() - t0;
        r.grad_norm = clip_grad_norm(optimizer.parameters(), options_.clip);
        optimizer.step();
        tape_.clear();  // nothing of this step's graph is needed any more
        return r;
    }

    // Test MSE, without recording, in chunks of at most `chunk` sequences.
    double evaluate(const AddingBatch& test, std::size_t chunk = 128) {
        NoGradGuard no_grad;
        const std::size_t B = test.x.shape()[1];
        const Variable x(test.x), y(test.y);
        double sum_sq = 0;
        for (std::size_t start = 0; start < B; start += chunk) {
            const std::size_t n = std::min(chunk, B - start);
            const Variable pred =
                model.forward(narrow(x, 1, static_cast<long>(start), static_cast<long>(n)));
            sum_sq += mse_loss(pred, narrow(y, 0, static_cast<long>(start), static_cast<long>(n)),
                               Reduction::sum)
                          .item();
        }
        return sum_sq / static_cast<double>(B);
    }

    AddingModel model;
    Adam optimizer;

private:
    TrainOptions options_;
    Tape tape_;
};

// A GitHub-flavoured Markdown table: a header row, a separator row (`---`, or `---:` for
// columns listed in right_aligned), one row per entry; cells padded to their column's width
// (counted in code points) and `|` inside a cell escaped. Rows shorter than the header are
// padded with empty cells.
inline std::string markdown_table(const std::vector<std::string>& header,
                                  const std::vector<std::vector<std::string>>& rows,
                                  const std::vector<std::size_t>& right_aligned = {}) {
    auto escape = [](const std::string& s) {
        std::string out;
        for (const char c : s) {
            if (c == '|') out += '\\';
            out += c;
        }
        return out;
    };
    auto width = [](const std::string& s) {  // code points, not bytes
        return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char c) {
            return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
        }));
    };
    const std::size_t cols = header.size();
    std::vector<std::vector<std::string>> cells{header};
    for (const auto& row : rows) {
        std::vector<std::string> r(row.begin(),
                                   row.begin() + static_cast<long>(std::min(row.size(), cols)));
        r.resize(cols);
        cells.push_back(std::move(r));
    }
    std::vector<std::size_t> w(cols, 3);
    for (auto& row : cells)
        for (std::size_t c = 0; c < cols; ++c) {
            row[c] = escape(row[c]);
            w[c] = std::max(w[c], width(row[c]));
        }
    auto right = [&](std::size_t c) {
        return std::find(right_aligned.begin(), right_aligned.end(), c) != right_aligned.end();
    };
    auto line = [&](const std::vector<std::string>& row) {
        std::string s = "|";
        for (std::size_t c = 0; c < cols; ++c) {
            const std::string pad(w[c] - width(row[c]), ' ');
            s += " " + (right(c) ? pad + row[c] : row[c] + pad) + " |";
        }
        return s + "\n";
    };
    std::string out = line(cells[0]) + "|";
    for (std::size_t c = 0; c < cols; ++c)
        out += " " + (right(c) ? std::string(w[c] - 1, '-') + ":" : std::string(w[c], '-')) + " |";
    out += "\n";
    for (std::size_t r = 1; r < cells.size(); ++r) out += line(cells[r]);
    return out;
}

}  // namespace tapegrad
