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
#include <optional>
#include <source_location>
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
    std::optional<DType> dtype = {};  // all layers; unset: float32, Recurrent: its cells' own
    Nonlinearity nonlinearity = Nonlinearity::tanh;  // RNN only
    GRUVariant variant = GRUVariant::cho;            // GRU only
    LSTMInit init = {};                              // LSTM only
};

// Makes the cell of one layer and direction, given its input size.
using CellFactory = std::function<std::shared_ptr<Cell>(std::size_t input_size, Generator& gen)>;

struct RecurrentOutput {
    Variable output;  // [T, B, D*H] (or [B, T, D*H]); zeros at padded steps
    std::vector<Variable>
        states;  // one per state tensor (h, c): [L*D, B, H], each sequence's own last step
};

namespace detail {
struct StateGradientLog;
}

class Recurrent : public Module {
public:
    Recurrent(std::string type, const CellFactory& make_cell, std::size_t input_size,
              RecurrentOptions options, Generator& gen);

    // x: [T, B, input_size]. initial: empty (zeros) or one [L*D, B, H] tensor per state tensor.
    // lengths: empty (all T) or B lengths in [1, T], in any order; steps past a sequence's
    // length leave its state unchanged and output zeros.
    // Padded steps are never read: NaN or Inf there changes nothing. In anomaly mode a NaN or
    // Inf in the data is reported at the caller's line.
    RecurrentOutput forward(const Variable& x, const std::vector<Variable>& initial = {},
                            const std::vector<std::size_t>& lengths = {},
                            const std::source_location& loc = std::source_location::current());
    // The same with lengths as an int64 tensor [B], as PyTorch passes them.
    RecurrentOutput forward(const Variable& x, const std::vector<Variable>& initial,
                            const Tensor& lengths,
                            const std::source_location& loc = std::source_location::current());

    const RecurrentOptions& options() const { return options_; }
    std::size_t input_size() const { return input_size_; }
    std::size_t hidden_size() const { return cells_.front()->hidden_size(); }
    std::size_t directions() const { return options_.bidirectional ? 2 : 1; }
    // The cell of layer `layer`, direction 0 (forward) or 1 (reverse).
    Cell& cell(std::size_t layer, std::size_t direction = 0) {
        return *cells_[layer * directions() + direction];
    }

protected:
    // The one layer-specific option of RecurrentOptions that the layer reads (none: every such
    // option must be at its default).
    enum class OwnOption { none, nonlinearity, init, variant };
    Recurrent(std::string type, const CellFactory& make_cell, std::size_t input_size,
              RecurrentOptions options, Generator& gen, OwnOption own);

private:
    friend class StateGradients;
    RecurrentOptions options_;
    std::size_t input_size_;
    std::vector<std::shared_ptr<Cell>> cells_;
    Generator dropout_gen_;
    std::shared_ptr<detail::StateGradientLog> watch_;  // set while a StateGradients lives
};

// How much gradient reaches each step's state: ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖ for the LSTM) for
// every t, from the backward passes of the layer's forwards while it lives. Vanishing and
// exploding gradients through time, measured (hooks on the states, see register_hook).
//
//   StateGradients watch(lstm);
//   auto out = lstm.forward(x);
//   loss_of(out).backward();
//   std::vector<double> dh = watch.norms(0);         // layer 0, forward direction, h
//   std::vector<double> dc = watch.norms(0, 0, 1);   // ... c
//
// A cell that runs whole sequences (Cell::sequence) has no per-step state to watch: its norms
// stay 0. A norm is the Frobenius norm over the batch, of the last backward that reached the step
// (0 where none did), indexed by time step t, whatever the direction. Each forward starts
// anew. Not for a layer shared by parallel shards.
class StateGradients {
public:
    explicit StateGradients(Recurrent& layer);
    ~StateGradients();
    StateGradients(const StateGradients&) = delete;
    StateGradients& operator=(const StateGradients&) = delete;

    std::vector<double> norms(std::size_t layer, std::size_t direction = 0,
                              std::size_t state = 0) const;

private:
    Recurrent& layer_;
    std::shared_ptr<detail::StateGradientLog> log_;
};

// Cuts states from their graph: carry them into the next chunk for truncated BPTT.
std::vector<Variable> detach(const std::vector<Variable>& states);

// The built-in layers. Their own options: RNN .nonlinearity, LSTM .init, GRU .variant; any
// other layer's option that is not at its default throws ValueError.
//   GRU gru(in, H, {.variant = GRUVariant::reset_after}, gen);
//   LSTM lstm(in, H, {.num_layers = 2, .dtype = float64, .init = {.forget_bias = 1}}, gen);
class RNN : public Recurrent {
public:
    RNN(std::size_t input_size, std::size_t hidden_size, RecurrentOptions options, Generator& gen);
};

class LSTM : public Recurrent {
public:
    LSTM(std::size_t input_size, std::size_t hidden_size, RecurrentOptions options, Generator& gen);
};

class GRU : public Recurrent {
public:
    GRU(std::size_t input_size, std::size_t hidden_size, RecurrentOptions options, Generator& gen);
};

}  // namespace tapegrad
