// An LSTM learns to add up sequences of 10 numbers: a complete training script.
#include <fmt/format.h>
#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

int main() {
    tune_malloc();  // optional: glibc keeps freed buffers for the next step (docs/performance.md)
    Generator gen(0);
    LSTM lstm(1, 32, {}, gen);  // input size 1, hidden size 32, one layer
    Linear head(32, 1, gen);    // last hidden state -> the sum
    Adam optimizer({param_group(lstm), param_group(head)}, {.lr = 1e-2});

    for (int step = 1; step <= 400; ++step) {
        Variable x(gen.uniform({10, 64, 1}, -1, 1, float32));  // [T, B, 1]: 64 sequences
        Variable h = squeeze(lstm.forward(x).states[0], 0);    // last hidden state [64, 32]
        Variable loss = mse_loss(head(h), sum(x, {0}));        // target: each sequence's sum
        optimizer.zero_grad();
        loss.backward();
        clip_grad_norm(optimizer.parameters(), 1.0);
        optimizer.step();
        if (step == 1 || step % 50 == 0) fmt::print("step {:3}  loss {:.4f}\n", step, loss.item());
    }
}
