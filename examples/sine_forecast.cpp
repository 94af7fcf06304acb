// Time-series prediction: a GRU (or LSTM) reads the last --window values of a noisy sum of
// sines and forecasts the next --horizon values at once. Reports the test MSE against the
// naive forecast (the last value, repeated) and writes forecast vs truth as CSV and PNG.
//   build/examples/sine_forecast [--cell gru|lstm|rnn] [--hidden 32] [--steps 1500] [--out DIR] ...
//
// The series is split in time: the first 80% for training, the last 20% for testing, and a
// test window lies entirely in the test part.
#include <chrono>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <tapegrad/tapegrad.hpp>

#include "examples/sine_forecast.hpp"

using namespace tapegrad;
using namespace sine_forecast;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// forecast.csv: origin, t, horizon (1..K), truth, model, naive for origins K apart, so the
// forecasts tile the stretch. forecast.dat: the same for gnuplot, a block per origin that
// starts at the last observed value (horizon 0).
void write_forecasts(const fs::path& dir, const std::vector<double>& series, const Windows& w,
                     const Tensor& model, const Tensor& naive) {
    const std::size_t N = w.origins.size(), K = w.y.shape()[1];
    std::ofstream csv(dir / "forecast.csv"), dat(dir / "forecast.dat");
    csv << "origin,t,horizon,truth,model,naive\n";
    dat << "# origin t horizon truth model naive\n";
    for (std::size_t n = 0; n < N; ++n) {
        const std::size_t o = w.origins[n];
        dat << fmt::format("{} {} 0 {} {} {}\n", o, o, series[o], series[o], series[o]);
        for (std::size_t h = 0; h < K; ++h) {
            const std::string row =
                fmt::format("{},{},{},{:.6f},{:.6f},{:.6f}", o, o + 1 + h, h + 1,
                            w.y.flat(n * K + h), model.flat(n * K + h), naive.flat(n * K + h));
            csv << row << "\n";
            std::string spaced = row;
            std::replace(spaced.begin(), spaced.end(), ',', ' ');
            dat << spaced << "\n";
        }
        dat << "\n";
    }
}

}  // namespace

int main(int argc, char** argv) {
    tune_malloc();
    CLI::App app{
        "Forecast a noisy multi-sine series several steps ahead with a GRU or LSTM and compare "
        "with the "
        "last-value forecast"};
    SeriesConfig sc;
    ModelConfig mc;
    TrainConfig tc;
    std::string cell_flag = "gru", out = "sine_forecast_out";
    std::size_t window = 48, batch = 64, steps = 1500, eval_every = 250, plot_origins = 24;
    std::uint64_t seed = 1;
    double log_seconds = 10;
    bool anomaly = false;
    app.add_option("--cell", cell_flag, "recurrent cell")
        ->check(CLI::IsMember({"gru", "lstm", "rnn"}))
        ->capture_default_str();
    train_common::positive_option(app, "--hidden", mc.hidden, "hidden size");
    train_common::positive_option(app, "--window", window, "past values the model reads");
    train_common::positive_option(app, "--horizon", mc.horizon, "values forecast at once (K)");
    train_common::positive_option(app, "--length", sc.length, "length of the series");
    app.add_option("--periods", sc.periods, "periods of the sines")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--amplitudes", sc.amplitudes, "their amplitudes")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--noise", sc.noise, "standard deviation of the Gaussian noise")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    train_common::positive_option(app, "--batch", batch, "windows per step");
    train_common::positive_option(app, "--steps", steps, "training steps");
    train_common::positive_option(app, "--lr", tc.lr, "Adam learning rate");
    train_common::positive_option(app, "--clip", tc.clip, "gradient-norm clipping threshold");
    app.add_option("--seed", seed, "seed of the series, initialisation and batches")
        ->capture_default_str();
    train_common::positive_option(app, "--eval-every", eval_every,
                                  "steps between test evaluations");
    train_common::positive_option(app, "--plot-origins", plot_origins,
                                  "forecasts drawn in the plot, --horizon apart");
    app.add_option("--out", out, "output folder for forecast.csv and forecast.png")
        ->capture_default_str();
    app.add_flag("--anomaly", anomaly,
                 "check every op for NaN/Inf (slower) to name the op where training breaks");
    train_common::positive_option(app, "--log-seconds", log_seconds,
                                  "seconds between progress lines when output is not a terminal");
    CLI11_PARSE(app, argc, argv);
    warn_if_slow_blas();

    try {
        mc.cell = train_common::parse_cell(cell_flag);
        const std::size_t K = mc.horizon;
        Generator series_gen(seed), init_gen(seed + 1), batch_gen(seed + 2);
        const std::vector<double> series = make_series(sc, series_gen);
        const std::size_t split = sc.length * 8 / 10;
        // Training windows and their targets end before `split`; test windows start after it.
        if (split < window + K || sc.length - split < window + K)
            throw ValueError(fmt::format(
                "sine_forecast: --length {} is too short for --window {} and --horizon {} "
                "in both the training (80%) and the test (20%) part",
                sc.length, window, K));
        const std::size_t train_first = window - 1, train_last = split - K - 1;
        std::vector<std::size_t> test_origins;
        for (std::size_t o = split + window - 1; o + K < sc.length; ++o) test_origins.push_back(o);
        const Windows test = make_windows(series, test_origins, window, K);
        const Tensor naive = last_value_forecast(test);
        const double naive_mse = mse(naive, test.y);

        Trainer trainer(mc, tc, init_gen);
        fmt::print(
            "Series of {} values: sines of periods {} and amplitudes {}, noise {} (MSE floor "
            "{:.4f}); "
            "{} test windows.\n{} hidden {} ({} parameters) reads {} values and forecasts the next "
            "{}; Adam lr {}, "
            "clip {}, batch {}, {} steps.\n",
            sc.length, fmt::join(sc.periods, "/"), fmt::join(sc.amplitudes, "/"), sc.noise,
            sc.noise * sc.noise, test_origins.size(), train_common::cell_name(mc.cell), mc.hidden,
            trainer.model.parameter_count(), window, K, tc.lr, tc.clip, batch, steps);
        std::fflush(stdout);

        AnomalyGuard anomaly_guard(anomaly);
        train_common::Progress progress(log_seconds);
        const auto t0 = Clock::now();
        double smoothed = 0, model_mse = 0;
        try {
            for (std::size_t step = 1; step <= steps; ++step) {
                const double loss = trainer.step(make_windows(
                    series, random_origins(train_first, train_last, batch, batch_gen), window, K));
                smoothed = step == 1 ? loss : 0.95 * smoothed + 0.05 * loss;
                const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
                const double rate = static_cast<double>(step) / elapsed;
                progress.update(fmt::format(
                    "step {:>5}/{}  loss {:.4f}  {:.1f} steps/s  ETA {}", step, steps, smoothed,
                    rate, train_common::format_seconds(static_cast<double>(steps - step) / rate)));
                if (step % eval_every == 0 || step == steps) {
                    model_mse = mse(trainer.predict(test), test.y);
                    progress.print(fmt::format(
                        "step {:>5}  train loss {:.4f}  test MSE {:.4f}  (last value {:.4f}, "
                        "ratio {:.3f})",
                        step, smoothed, model_mse, naive_mse, model_mse / naive_mse));
                }
            }
        } catch (const train_common::Diverged& e) {
            progress.print("");
            fmt::print(stderr, "sine_forecast: training stopped at {}\n{}\n", e.what(),
                       train_common::divergence_advice(anomaly, false));
            return 3;
        }
        const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();

        const Tensor forecast = trainer.predict(test);
        const auto model_h = mse_per_horizon(forecast, test.y),
                   naive_h = mse_per_horizon(naive, test.y);
        fmt::print("\nTest MSE over {} windows, by steps ahead (trained in {:.1f} s):\n",
                   test_origins.size(), seconds);
        fmt::print("  {:>10} {:>10} {:>10} {:>8}\n", "steps ahead", "model", "last value", "ratio");
        for (std::size_t h = 0; h < K; ++h)
            if (h == 0 || h + 1 == K || (h + 1) % 5 == 0)
                fmt::print("  {:>10} {:>10.4f} {:>10.4f} {:>8.3f}\n", h + 1, model_h[h], naive_h[h],
                           model_h[h] / naive_h[h]);
        fmt::print("  {:>10} {:>10.4f} {:>10.4f} {:>8.3f}\n", "all", model_mse, naive_mse,
                   model_mse / naive_mse);
        fmt::print("The model's error is {:.1f}x smaller than the last-value forecast's.\n",
                   naive_mse / model_mse);

        // Forecast vs truth over the start of the test part: origins K apart.
        std::vector<std::size_t> plotted;
        for (std::size_t i = 0; i < plot_origins && i * K < test_origins.size(); ++i)
            plotted.push_back(test_origins[i * K]);
        const Windows shown = make_windows(series, plotted, window, K);
        const fs::path dir(out);
        fs::create_directories(dir);
        write_forecasts(dir, series, shown, trainer.predict(shown), last_value_forecast(shown));
        std::ofstream(dir / "forecast.gp") << fmt::format(
            "set terminal pngcairo size 1100,420 font 'sans,10'\nset output 'forecast.png'\n"
            "set title \"{} forecasts {} steps ahead from the last {} values (test MSE {:.4f}; "
            "last value {:.4f})\"\n"
            "set xlabel 'time step'\nset ylabel 'value'\nset grid\nset autoscale xfix\nset key top "
            "left box opaque\n"
            "plot 'forecast.dat' using 2:4 with linespoints pt 7 ps 0.4 lc 'gray40' title 'truth "
            "(noisy series)', "
            "'' using 2:5 with lines lw 2 lc '#1f77b4' title 'model forecast', "
            "'' using 2:6 with lines dt 2 lw 1.5 lc '#d62728' title 'last-value forecast'\n",
            train_common::cell_label(mc.cell), K, window, model_mse, naive_mse);
        const bool png = train_common::run_gnuplot(dir, "forecast.gp");
        fmt::print("\nWrote {}{}\n", (dir / "forecast.csv").string(),
                   png ? ", " + (dir / "forecast.png").string() : "");
        if (!png)
            fmt::print("notice: gnuplot not found (or it failed); forecast.png skipped, see {}\n",
                       (dir / "forecast.gp").string());
    } catch (const Error& e) {
        fmt::print(stderr, "{}\n", e.what());
        return 1;
    }
    return 0;
}
