// Sequence classification: an LSTM reads token sequences of varying length, each holding two
// different marker tokens among noise, and names the marker that came first. Shuffled
// minibatches from a DataLoader, int64 ids, labels and lengths, test accuracy under no-grad.
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

// n sequences of 8..T tokens: noise 5..15, and markers 1..4 at two random steps, the first
// marker (class = marker - 1) differing from the second; padded with 0 to T. ids [T, n],
// labels [n] and lengths [n], all int64.
struct Data {
    Tensor ids, labels, lengths;
};
Data make_data(std::size_t n, std::size_t T, Generator& gen) {
    std::vector<std::int64_t> ids(T * n, 0), labels(n), lengths(n);
    for (std::size_t s = 0; s < n; ++s) {
        const std::size_t length = 8 + gen.below(T - 7);
        const std::size_t first = gen.below(length - 1),
                          second = first + 1 + gen.below(length - first - 1);
        const auto a = static_cast<std::int64_t>(gen.below(4));
        const auto b = (a + 1 + static_cast<std::int64_t>(gen.below(3))) % 4;
        labels[s] = a;
        lengths[s] = static_cast<std::int64_t>(length);
        for (std::size_t t = 0; t < length; ++t)
            ids[t * n + s] = t == first ? a + 1 : t == second ? b + 1 : 5 + gen.below(11);
    }
    return {Tensor::from(ids, {T, n}), Tensor::from(labels, {n}), Tensor::from(lengths, {n})};
}

struct Classifier : Module {
    std::shared_ptr<Embedding> embed;
    std::shared_ptr<LSTM> lstm;
    std::shared_ptr<Linear> head;
    Classifier(std::size_t hidden, Generator& gen) : Module("Classifier") {
        embed = register_module("embed", std::make_shared<Embedding>(16, 16, gen));
        lstm = register_module("lstm", std::make_shared<LSTM>(16, hidden, RecurrentOptions{}, gen));
        head = register_module("head", std::make_shared<Linear>(hidden, 4, gen));
    }
    Variable forward(const Tensor& ids, const Tensor& lengths) {  // logits [n, 4]
        const RecurrentOutput out = lstm->forward(embed->forward(ids), {}, lengths);
        return (*head)(squeeze(out.states[0], 0));  // each sequence's own last hidden state
    }
};

int main(int argc, char** argv) {
    std::size_t train_size = 4000, epochs = 5, T = 100, hidden = 64;
    double min_accuracy = 0;
    CLI::App app("An LSTM finds the marker token in sequences of varying length");
    app.add_option("--train", train_size, "training sequences")->capture_default_str();
    app.add_option("--epochs", epochs)->capture_default_str();
    app.add_option("--length", T, "longest sequence (>= 8)")->capture_default_str();
    app.add_option("--hidden", hidden)->capture_default_str();
    app.add_option("--min-accuracy", min_accuracy, "exit 1 below this final test accuracy");
    CLI11_PARSE(app, argc, argv);

    Generator gen(0);
    const Data train = make_data(train_size, T, gen), test = make_data(1000, T, gen);
    Classifier model(hidden, gen);
    Adam optimizer({param_group(model)}, {.lr = 3e-3});
    DataLoader loader(train.ids, train.labels,
                      {.batch_size = 32, .shuffle = true, .x_axis = 1, .seed = 1});
    double test_accuracy = 0;
    for (std::size_t epoch = 1; epoch <= epochs; ++epoch) {
        double total = 0;
        for (const Batch& b : loader.epoch()) {
            const Variable logits = model.forward(b.x, take(train.lengths, 0, b.indices));
            const Variable loss = cross_entropy(logits, b.y);
            optimizer.zero_grad();
            loss.backward();
            clip_grad_norm(optimizer.parameters(), 1.0);
            optimizer.step();
            total += loss.item() * static_cast<double>(b.size());
        }
        NoGradGuard no_grad;  // evaluation records nothing
        test_accuracy = accuracy(model.forward(test.ids, test.lengths), test.labels).item();
        fmt::print("epoch {}  train loss {:.4f}  test accuracy {:.3f}\n", epoch,
                   total / static_cast<double>(train_size), test_accuracy);
    }
    return test_accuracy >= min_accuracy ? 0 : 1;
}
