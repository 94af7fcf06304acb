// The cell interface: one time step from an input and a state to the new state. Any type that
// implements it — the built-in RNN, LSTM and GRU cells or a user's own — gets everything the
// recurrent driver (layers/recurrent.hpp) offers: stacking, bidirectional, variable lengths,
// initial states, dropout between layers and truncated BPTT.
#pragma once

#include <vector>

#include "layers/module.hpp"
#include "ops/linalg.hpp"

namespace tapegrad {

using State = std::vector<Variable>;  // e.g. {h} or {h, c}, each [B, hidden_size]

class Cell : public Module {
public:
    using Module::Module;
    virtual std::size_t input_size() const = 0;
    virtual std::size_t hidden_size() const = 0;
    // How many tensors the state holds (1 for RNN and GRU, 2 for LSTM). The first one is the
    // cell's output at each step.
    virtual std::size_t state_count() const { return 1; }

    // A cell may declare an input projection, computed for all time steps at once as one
    // matmul before the time loop: project_input([N, input_size]) -> [N, P]; step() then gets
    // the projected rows instead of raw inputs. Cells that do not, get x_t [B, input_size].
    virtual bool projects_input() const { return false; }
    virtual Variable project_input(const Variable& x) { return x; }

    // One step: x_t [B, input_size] (or its projection), state -> new state.
    virtual State step(const Variable& x_t, const State& state) = 0;

    // The driver brackets each sequence's steps (per layer and direction) with these, so a
    // cell can compute once what every step shares — slices of its weights, say — and have
    // that work and its gradient happen once per sequence instead of once per step. step()
    // must still work on its own, outside a bracket. Use SequenceScope, which ends the
    // bracket however the steps end; it also opens a WeightPackScope (ops/linalg.hpp), so
    // the weights a cell multiplies by at every step are packed once per sequence.
    virtual void begin_sequence() {}
    virtual void end_sequence() {}
};

class SequenceScope {
public:
    explicit SequenceScope(Cell& cell) : cell_(cell) { cell_.begin_sequence(); }
    ~SequenceScope() { cell_.end_sequence(); }
    SequenceScope(const SequenceScope&) = delete;
    SequenceScope& operator=(const SequenceScope&) = delete;

private:
    WeightPackScope packs_;  // declared first: open before begin_sequence, closed after end
    Cell& cell_;
};

}  // namespace tapegrad
