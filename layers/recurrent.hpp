// The recurrent driver: runs any Cell over a sequence, for built-in and user cells alike.
//
//   Recurrent lstm("LSTM", [](std::size_t in, Generator& g) {
//       return std::make_shared<LSTMCell>(in, 64, g);
//   }, 2 /*input size*/, {.num_layers = 2, .bidirectional = true}, gen);
//   auto [out, states] = lstm.forward(x, {}, lengths);   // x [T, B, 2], out [T, B, 128]
//
// Parameters are named as PyTorch names them: weight_ih_l0, weight_hh_l1_reverse, ...
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/random.hpp"
#include "layers/cell.hpp"
#include "layers/cells.hpp"

namespace tapegrad {

struct RecurrentOptions {
    std::size_t num_layers = 1;
    bool bidirectional = false;
    bool batch_first = false;  // x and output as [B, T, F] instead of [T, B, F]
    double dropout = 0.0;      // on the outputs of every layer but the last, in training mode
    std::uint64_t dropout_seed = 0;
};

// Makes the cell of one layer and direction, given its input size.
using CellFactory = std::function<std::shared_ptr<Cell>(std::size_t input_size, Generator& gen)>;

struct RecurrentOutput {
    Variable output;  // [T, B, D*H] (or [B, T, D*H]); zeros at padded steps
    std::vector<Variable>
        states;  // one per state tensor (h, c): [L*D, B, H], each sequence's own last step
};

class Recurrent : public Module {
public:
    Recurrent(std::string type, const CellFactory& make_cell, std::size_t input_size,
              RecurrentOptions options, Generator& gen);

    // x: [T, B, input_size]. initial: empty (zeros) or one [L*D, B, H] tensor per state tensor.
    // lengths: empty (all T) or B lengths in [1, T], in any order; steps past a sequence's
    // length leave its state unchanged and output zeros.
    RecurrentOutput forward(const Variable& x, const std::vector<Variable>& initial = {},
                            const std::vector<std::size_t>& lengths = {});

    const RecurrentOptions& options() const { return options_; }
    std::size_t input_size() const { return input_size_; }
    std::size_t hidden_size() const { return cells_.front()->hidden_size(); }
    std::size_t directions() const { return options_.bidirectional ? 2 : 1; }
    // The cell of layer `layer`, direction 0 (forward) or 1 (reverse).
    Cell& cell(std::size_t layer, std::size_t direction = 0) {
        return *cells_[layer * directions() + direction];
    }

private:
    RecurrentOptions options_;
    std::size_t input_size_;
    std::vector<std::shared_ptr<Cell>> cells_;
    Generator dropout_gen_;
};

// Cuts states from their graph: carry them into the next chunk for truncated BPTT.
std::vector<Variable> detach(const std::vector<Variable>& states);

class RNN : public Recurrent {
public:
    RNN(std::size_t input_size, std::size_t hidden_size, RecurrentOptions options, Generator& gen,
        DType dtype = float32, Nonlinearity nonlinearity = Nonlinearity::tanh);
};

class LSTM : public Recurrent {
public:
    LSTM(std::size_t input_size, std::size_t hidden_size, RecurrentOptions options, Generator& gen,
         DType dtype = float32, LSTMInit init = {});
};

class GRU : public Recurrent {
public:
    GRU(std::size_t input_size, std::size_t hidden_size, RecurrentOptions options, Generator& gen,
        DType dtype = float32, GRUVariant variant = GRUVariant::cho);
};

}  // namespace tapegrad
