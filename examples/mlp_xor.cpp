// The smallest meaningful model: a 2-8-1 MLP learns XOR with plain gradient descent.
//   build/examples/mlp_xor [--steps N] [--lr X] [--seed S] [--float64]
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

int main(int argc, char** argv) {
    tune_malloc();
    CLI::App app{"Train a 2-8-1 MLP on XOR and print the loss falling"};
    int steps = 2000;
    double lr = 0.5;
    std::uint64_t seed = 0;
    bool f64 = false;
    app.add_option("--steps", steps, "training steps")->check(CLI::PositiveNumber);
    app.add_option("--lr", lr, "learning rate")->check(CLI::PositiveNumber);
    app.add_option("--seed", seed, "initialisation seed");
    app.add_flag("--float64", f64, "train in float64 instead of float32");
    CLI11_PARSE(app, argc, argv);
    warn_if_slow_blas();

    const DType dt = f64 ? float64 : float32;
    Generator gen(seed);
    // Parameters: leaves that require grad.
    Variable w1(gen.uniform({2, 8}, -1, 1, dt), true, "w1");
    Variable b1(Tensor::zeros({8}, dt), true, "b1");
    Variable w2(gen.uniform({8, 1}, -1, 1, dt), true, "w2");
    Variable b2(Tensor::zeros({1}, dt), true, "b2");
    const Variable x(Tensor::from({0, 0, 0, 1, 1, 0, 1, 1}, {4, 2}, dt));
    const Variable y(Tensor::from({0, 1, 1, 0}, {4, 1}, dt));

    double loss_value = 0;
    for (int step = 0; step <= steps; ++step) {
        Variable hidden = tanh(matmul(x, w1) + b1);
        Variable p = sigmoid(matmul(hidden, w2) + b2);
        Variable diff = p - y;
        Variable loss = mean(diff * diff);
        loss.backward();
        for (Variable* param : {&w1, &b1, &w2, &b2}) {  // SGD: p -= lr * grad
            dispatch(dt, [&]<class T>() {
                param->mutable_value().mutable_xt<T>() -=
                    static_cast<T>(lr) * param->grad().xt<T>();
            });
            param->zero_grad();
        }
        loss_value = loss.item();
        if (step % (steps / 10) == 0) fmt::print("step {:5d}  loss {:.6f}\n", step, loss_value);
    }

    NoGradGuard no_grad;
    Variable p = sigmoid(matmul(tanh(matmul(x, w1) + b1), w2) + b2);
    fmt::print("predictions for (0,0) (0,1) (1,0) (1,1): {:.3f} {:.3f} {:.3f} {:.3f}\n",
               p.value().flat(0), p.value().flat(1), p.value().flat(2), p.value().flat(3));
    const bool learned = p.value().flat(0) < 0.5 && p.value().flat(1) > 0.5 &&
                         p.value().flat(2) > 0.5 && p.value().flat(3) < 0.5;
    fmt::print("{}\n", learned ? "XOR learned." : "XOR not learned (try more --steps).");
    return learned ? 0 : 1;
}
