// Optimizers, schedules and clipping against PyTorch: trajectories, lr sequences and clipped
// gradients recorded once by tests/reference/make_optim_reference.py (the tables here mirror
// the script's), bitwise resumption from checkpoints, and an LSTM regression per optimizer.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

#include "tests/test_support.hpp"

using namespace tapegrad;
namespace fs = std::filesystem;

namespace {

const TensorFile& reference() {
    static const TensorFile file = load_safetensors(
        (fs::path(__FILE__).parent_path() / "reference" / "optim_reference.safetensors").string());
    return file;
}

const Tensor& expected_table(const std::string& name) {
    const Tensor* t = reference().find(name);
    if (!t) throw std::runtime_error("optim_reference.safetensors has no tensor " + name);
    return *t;
}

// max over elements of |actual - expected| / |expected|, expected = row `row` of `table`.
double worst_rel_error(const Tensor& actual, const Tensor& table, std::size_t row) {
    const std::size_t n = actual.numel();
    REQUIRE(table.numel() >= (row + 1) * n);
    double worst = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double a = actual.flat(i), e = table.flat(row * n + i);
        worst = std::max(worst, std::abs(a - e) / std::max(std::abs(e), 1e-300));
    }
    return worst;
}

std::string temp_path(const std::string& name) {
    return (tapegrad::test::scratch_dir("tests") / name).string();  // per process
}

// ---- the two problems of the reference script ----

// Rosenbrock: f(p) = (1 - x)^2 + 100 (y - x^2)^2 from (-1.2, 1).
struct Rosen : Module {
    Variable p;
    explicit Rosen(DType dtype) : Module("Rosen") {
        p = register_parameter("p", Tensor::from({-1.2, 1.0}, {2}, dtype));
    }
    Variable loss() const {
        const Variable x = narrow(p, 0, 0, 1), y = narrow(p, 0, 1, 1);
        const Variable a = 1.0 - x, b = y - x * x;
        return sum(a * a + 100.0 * (b * b));
    }
    Params groups(double) const { return Params(*this); }
};

// f = 1/2 sum(H (W - W0)^2) + 1/2 v^T A v - b^T v; u gets no gradient.
// Groups: {W, u} with the optimizer's options, {v} with lr / 2 and weight decay 0.05.
struct Quad : Module {
    Variable W, v, u, H, W0, A, b;
    explicit Quad(DType dt) : Module("Quad") {
        W = register_parameter("W", Tensor::from({0.1, 0.2, 0.3, -0.4, 0.5, -0.6}, {2, 3}, dt));
        v = register_parameter("v", Tensor::from({1.0, -1.0, 2.0}, {3, 1}, dt));
        u = register_parameter("u", Tensor::from({0.7, -0.3}, {2}, dt));
        H = constant(Tensor::from({1.0, 2.0, 0.5, 3.0, 0.25, 1.5}, {2, 3}, dt));
        W0 = constant(Tensor::from({0.5, -1.0, 2.0, 1.0, 0.0, -0.5}, {2, 3}, dt));
        A = constant(Tensor::from({2.0, 0.5, 0.0, 0.5, 1.0, 0.25, 0.0, 0.25, 3.0}, {3, 3}, dt));
        b = constant(Tensor::from({1.0, -2.0, 0.5}, {3, 1}, dt));
    }
    Variable loss() const {
        const Variable d = W - W0;
        return 0.5 * sum(H * d * d) + 0.5 * sum(v * matmul(A, v)) - sum(b * v);
    }
    Params groups(double lr) const { return {ParamGroup{{W, u}}, ParamGroup{{v}, lr * 0.5, 0.05}}; }
};

// ---- the optimizer configurations of the reference script ----

using Make = std::function<std::unique_ptr<Optimizer>(Params)>;
struct Config {
    std::string name;
    double lr;
    Make make;
};

template <class O, class Options>
Make maker(Options options) {
    return [options](Params params) -> std::unique_ptr<Optimizer> {
        return std::make_unique<O>(std::move(params), options);
    };
}

const std::vector<Config>& configs() {
    static const std::vector<Config> table = {
        {"sgd", 1e-3, maker<SGD>(SGDOptions{.lr = 1e-3})},
        {"sgd_momentum", 1e-3, maker<SGD>(SGDOptions{.lr = 1e-3, .momentum = 0.9})},
        {"sgd_dampening", 1e-3,
         maker<SGD>(SGDOptions{.lr = 1e-3, .momentum = 0.9, .dampening = 0.5})},
        {"sgd_nesterov", 1e-3,
         maker<SGD>(SGDOptions{.lr = 1e-3, .momentum = 0.9, .nesterov = true})},
        {"sgd_weight_decay", 1e-3,
         maker<SGD>(SGDOptions{.lr = 1e-3, .momentum = 0.5, .weight_decay = 0.1})},
        {"adam", 0.05, maker<Adam>(AdamOptions{.lr = 0.05})},
        {"adam_amsgrad", 0.05, maker<Adam>(AdamOptions{.lr = 0.05, .amsgrad = true})},
        {"adam_weight_decay", 0.05,
         maker<Adam>(AdamOptions{
             .lr = 0.05, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-3, .weight_decay = 0.1})},
        {"adamw", 0.05, maker<AdamW>(AdamWOptions{.lr = 0.05})},
        {"adamw_amsgrad", 0.05,
         maker<AdamW>(AdamWOptions{.lr = 0.05, .weight_decay = 0.1, .amsgrad = true})},
        {"rmsprop", 0.01, maker<RMSprop>(RMSpropOptions{.lr = 0.01})},
        {"rmsprop_centered", 0.01, maker<RMSprop>(RMSpropOptions{.lr = 0.01, .centered = true})},
        {"rmsprop_momentum", 0.01, maker<RMSprop>(RMSpropOptions{.lr = 0.01, .momentum = 0.9})},
        {"rmsprop_all", 0.01,
         maker<RMSprop>(RMSpropOptions{.lr = 0.01,
                                       .alpha = 0.9,
                                       .eps = 1e-4,
                                       .weight_decay = 0.1,
                                       .momentum = 0.5,
                                       .centered = true})},
        {"adagrad", 0.1, maker<Adagrad>(AdagradOptions{.lr = 0.1})},
        {"adagrad_all", 0.1,
         maker<Adagrad>(AdagradOptions{.lr = 0.1,
                                       .lr_decay = 0.05,
                                       .weight_decay = 0.1,
                                       .initial_accumulator_value = 0.5,
                                       .eps = 1e-3})},
    };
    return table;
}

// Runs 20 steps of `config` on `problem` and returns, per parameter name, the worst relative
// error against the reference over all steps.
template <class Problem>
std::map<std::string, double> trajectory_errors(const Config& config,
                                                const std::string& problem_name, DType dtype) {
    Problem problem(dtype);
    auto opt = config.make(problem.groups(config.lr));
    std::map<std::string, double> worst;
    for (std::size_t step = 0; step < 20; ++step) {
        opt->zero_grad();
        problem.loss().backward();
        opt->step();
        for (auto& [name, p] : problem.named_parameters()) {
            const Tensor& table =
                expected_table(fmt::format("opt.{}.{}.{}", config.name, problem_name, name));
            worst[name] = std::max(worst[name], worst_rel_error(p.value(), table, step));
        }
    }
    return worst;
}

}  // namespace

TEST_CASE("optim: every optimizer follows PyTorch's trajectory for 20 steps (float64)") {
    std::string names;
    for (const auto& c : configs()) names += (names.empty() ? "" : ",") + c.name;
    REQUIRE(reference().metadata.at("configs") == names);  // the script and this table agree
    for (const auto& c : configs()) {
        for (auto& [param, err] : trajectory_errors<Rosen>(c, "rosen", float64))
            CHECK_MESSAGE(err <= 1e-6, c.name, " rosen ", param, ": relative error ", err);
        for (auto& [param, err] : trajectory_errors<Quad>(c, "quad", float64))
            CHECK_MESSAGE(err <= 1e-6, c.name, " quad ", param, ": relative error ", err);
    }
}

TEST_CASE("optim: float32 parameters are updated in float32 and stay near the float64 trajectory") {
    for (const auto& c : configs()) {
        Quad q(float32);
        auto opt = c.make(q.groups(c.lr));
        for (int step = 0; step < 20; ++step) {
            opt->zero_grad();
            q.loss().backward();
            opt->step();
        }
        for (auto& [name, p] : q.named_parameters()) {
            CHECK(p.dtype() == float32);
            const double err = worst_rel_error(
                p.value(), expected_table(fmt::format("opt.{}.quad.{}", c.name, name)), 19);
            CHECK_MESSAGE(err <= 3e-5, c.name, " ", name, ": relative error ", err);
        }
        for (const auto& [buffer, t] : opt->state(0).buffers)
            CHECK_MESSAGE(t.dtype() == float32, c.name, " ", buffer);
        CHECK(opt->state(0).step == 20);
        CHECK(opt->state(1).step == 0);  // u: never a gradient, never a state
        CHECK(opt->state(1).buffers.empty());
    }
}

// ---- schedules ----

namespace {

double plateau_metric(int epoch) {
    return epoch < 8 || epoch >= 20 ? 1.0 / (1 + 0.1 * epoch) : 0.5;
}

std::vector<std::shared_ptr<Scheduler>> make_schedule(const std::string& name, Optimizer& opt) {
    if (name == "step") return {std::make_shared<StepLR>(opt, 7, 0.5)};
    if (name == "exponential") return {std::make_shared<ExponentialLR>(opt, 0.9)};
    if (name == "cosine") return {std::make_shared<CosineAnnealingLR>(opt, 10, 0.001)};
    if (name == "cosine_zero") return {std::make_shared<CosineAnnealingLR>(opt, 30)};
    if (name == "linear") return {std::make_shared<LinearLR>(opt, 0.25, 1.0, 8)};
    if (name == "linear_default") return {std::make_shared<LinearLR>(opt)};
    if (name == "linear_decay") return {std::make_shared<LinearLR>(opt, 1.0, 0.1, 20)};
    if (name == "warmup_cosine") {
        auto warm = std::make_shared<LinearLR>(opt, 0.1, 1.0, 5);
        auto cosine = std::make_shared<CosineAnnealingLR>(opt, 25, 1e-4);
        return {std::make_shared<SequentialLR>(
            opt, std::vector<std::shared_ptr<LRScheduler>>{warm, cosine}, std::vector<long>{5})};
    }
    if (name == "chain")
        return {std::make_shared<StepLR>(opt, 5, 0.5), std::make_shared<ExponentialLR>(opt, 0.95)};
    if (name == "plateau")
        return {std::make_shared<ReduceLROnPlateau>(
            opt,
            PlateauOptions{
                .factor = 0.5, .patience = 2, .threshold = 1e-2, .cooldown = 1, .min_lr = {0.02}})};
    if (name == "plateau_max_abs")
        return {std::make_shared<ReduceLROnPlateau>(
            opt, PlateauOptions{.mode = PlateauMode::max,
                                .factor = 0.3,
                                .patience = 1,
                                .threshold = 0.05,
                                .threshold_mode = ThresholdMode::abs,
                                .min_lr = {0.0, 0.01}})};
    throw std::runtime_error("unknown schedule " + name);
}

}  // namespace

TEST_CASE("schedules: every schedule gives PyTorch's lr sequence over 30 epochs") {
    const std::string names = reference().metadata.at("schedules");
    int checked = 0;
    for (std::size_t start = 0; start < names.size();) {
        const std::size_t comma = std::min(names.find(',', start), names.size());
        const std::string name = names.substr(start, comma - start);
        start = comma + 1;
        Variable a(Tensor::from({1.0}, {1}, float64), true),
            b(Tensor::from({2.0}, {1}, float64), true);
        SGD opt({ParamGroup{{a}}, ParamGroup{{b}, 0.05}}, SGDOptions{.lr = 0.1});
        auto schedule = make_schedule(name, opt);
        const bool max_mode = name == "plateau_max_abs";
        const Tensor& table = expected_table("sched." + name);
        double worst = worst_rel_error(
            Tensor::from({opt.groups()[0].lr, opt.groups()[1].lr}, {2}, float64), table, 0);
        for (int epoch = 0; epoch < 30; ++epoch) {
            opt.step();
            for (auto& s : schedule) {
                if (auto* plateau = dynamic_cast<ReduceLROnPlateau*>(s.get()))
                    plateau->step(max_mode ? -plateau_metric(epoch) : plateau_metric(epoch));
                else dynamic_cast<LRScheduler&>(*s).step();
            }
            const Tensor lrs = Tensor::from({opt.groups()[0].lr, opt.groups()[1].lr}, {2}, float64);
            worst = std::max(worst, worst_rel_error(lrs, table, epoch + 1));
            CHECK(schedule.back()->last_lr() ==
                  std::vector<double>{opt.groups()[0].lr, opt.groups()[1].lr});
        }
        CHECK_MESSAGE(worst <= 1e-12, name, ": relative error ", worst);
        ++checked;
    }
    CHECK(checked == 11);
}

TEST_CASE("schedules: hand-checked values and option errors") {
    Variable a(Tensor::from({1.0}, {1}, float64), true);
    SGD opt({a}, SGDOptions{.lr = 1.0});
    // LinearLR(0.5, 1, 4): factor 0.5 + 0.5 e / 4 -> 0.5, 0.625, 0.75, 0.875, 1, 1
    LinearLR warm(opt, 0.5, 1.0, 4);
    std::vector<double> seen{opt.groups()[0].lr};
    for (int e = 0; e < 5; ++e) {
        warm.step();
        seen.push_back(opt.groups()[0].lr);
    }
    const std::vector<double> expected{0.5, 0.625, 0.75, 0.875, 1.0, 1.0};
    for (std::size_t i = 0; i < expected.size(); ++i)
        CHECK(seen[i] == doctest::Approx(expected[i]).epsilon(1e-15));
    CHECK(opt.groups()[0].initial_lr == 1.0);

    CHECK_THROWS_AS(StepLR(opt, 0), ValueError);
    CHECK_THROWS_AS(CosineAnnealingLR(opt, 0), ValueError);
    CHECK_THROWS_AS(LinearLR(opt, 1.5), ValueError);
    CHECK_THROWS_AS(ReduceLROnPlateau(opt, {.factor = 1.0}), ValueError);
    CHECK_THROWS_AS(ReduceLROnPlateau(opt, {.min_lr = {0.1, 0.2}}), ValueError);
    auto s1 = std::make_shared<StepLR>(opt, 2);
    CHECK_THROWS_WITH_AS(SequentialLR(opt, {s1}, {3}),
                         doctest::Contains("1 schedulers need 0 milestones"), ValueError);
    Variable other(Tensor::from({1.0}, {1}, float64), true);
    SGD opt2({other}, SGDOptions{.lr = 1.0});
    auto s2 = std::make_shared<StepLR>(opt2, 2);
    CHECK_THROWS_WITH_AS(SequentialLR(opt, {s1, s2}, {3}),
                         doctest::Contains("drives another optimizer"), ValueError);

    // a group added later: the optimizer steps it, the schedules built before refuse to guess
    Variable c(Tensor::from({1.0}, {1}, float64), true);
    opt.add_param_group(ParamGroup{{c}, 0.5});
    REQUIRE(opt.groups().size() == 2);
    CHECK(opt.groups()[1].lr == 0.5);
    CHECK_THROWS_WITH_AS(warm.step(), doctest::Contains("the schedule was built for 1"),
                         ValueError);
    CHECK_THROWS_WITH_AS(opt.add_param_group(ParamGroup{{a}}), doctest::Contains("more than once"),
                         ValueError);
}

// ---- clipping ----

namespace {
struct ClipSetup {
    Variable a{Tensor::from({0.5, -1.5, 2.0, 0.25, 3.0, -0.75}, {2, 3}, float64), true, "a"};
    Variable b{Tensor::from({-2.5, 0.125}, {2}, float64), true, "b"};
    Variable c{Tensor::from({1.0}, {1}, float64), true, "c"};
    ClipSetup() {
        a.set_grad(Tensor::from({0.3, -1.2, 0.8, 2.0, -0.1, 0.6}, {2, 3}, float64));
        b.set_grad(Tensor::from({-1.7, 0.9}, {2}, float64));
    }
    std::vector<Variable> params() const { return {a, b, c}; }
};
}  // namespace

TEST_CASE("clip_grad_norm: returned norm and clipped gradients match PyTorch") {
    const double inf = std::numeric_limits<double>::infinity();
    const std::vector<std::tuple<std::string, double, double>> cases = {{"l2", 1.0, 2.0},
                                                                        {"l1", 2.0, 1.0},
                                                                        {"l3", 0.5, 3.0},
                                                                        {"inf", 0.7, inf},
                                                                        {"no_clip", 100.0, 2.0}};
    CHECK(reference().metadata.at("clip_cases") == "l2,l1,l3,inf,no_clip");
    for (const auto& [name, max_norm, norm_type] : cases) {
        ClipSetup s;
        const double norm = clip_grad_norm(s.params(), max_norm, norm_type);
        CHECK_MESSAGE(worst_rel_error(Tensor::scalar(norm, float64),
                                      expected_table("clip." + name + ".norm"), 0) <= 1e-12,
                      name);
        CHECK_MESSAGE(
            worst_rel_error(s.a.grad(), expected_table("clip." + name + ".grad.a"), 0) <= 1e-12,
            name);
        CHECK_MESSAGE(
            worst_rel_error(s.b.grad(), expected_table("clip." + name + ".grad.b"), 0) <= 1e-12,
            name);
        CHECK_FALSE(s.c.grad().defined());
    }
    // By hand: grads (3, 4) have norm 5; max_norm 1 scales them by 1 / (5 + 1e-6).
    Variable p(Tensor::from({0.0, 0.0}, {2}, float32), true);
    p.set_grad(Tensor::from({3.0, 4.0}, {2}, float32));
    CHECK(clip_grad_norm({p}, 1.0) == doctest::Approx(5.0));
    CHECK(p.grad().flat(0) == doctest::Approx(0.6).epsilon(1e-6));
    CHECK(p.grad().dtype() == float32);
    CHECK(clip_grad_norm({Variable(Tensor::from({1.0}, {1}, float64), true)}, 1.0) ==
          0.0);  // no gradients
}

TEST_CASE("clip_grad_norm: non-finite norms raise when asked; clip_grad_value clamps") {
    ClipSetup s;
    s.b.set_grad(Tensor::from({std::nan(""), 1.0}, {2}, float64));
    const Tensor a_before = s.a.grad();
    CHECK_THROWS_WITH_AS(clip_grad_norm(s.params(), 1.0, 2.0, true),
                         doctest::Contains("total norm of order 2"), ValueError);
    CHECK(max_abs_diff(s.a.grad(), a_before) == 0.0);  // nothing changed
    s.b.set_grad(Tensor::from({std::numeric_limits<double>::infinity(), 1.0}, {2}, float64));
    CHECK_THROWS_AS(clip_grad_norm(s.params(), 1.0, 2.0, true), ValueError);
    CHECK(
        std::isinf(clip_grad_norm(s.params(), 1.0)));  // as PyTorch: returns inf, grads scaled by 0
    CHECK(s.a.grad().flat(0) == 0.0);
    CHECK_THROWS_AS(clip_grad_norm(s.params(), 1.0, -1.0), ValueError);

    ClipSetup v;
    v.a.set_grad(Tensor::from({0.3, -1.2, 0.8, 2.0, -0.1, 0.6}, {2, 3}, float64));
    clip_grad_value({v.a}, 0.5);
    CHECK(worst_rel_error(v.a.grad(), expected_table("clip.value.grad.a"), 0) == 0.0);
    CHECK_THROWS_AS(clip_grad_value({v.a}, -1.0), ValueError);
}

// ---- resuming from checkpoints ----

namespace {

// A quadratic run with one of four schedules, checkpointed through files.
struct Run {
    Quad model{float64};
    std::unique_ptr<Optimizer> opt;
    std::shared_ptr<Scheduler> schedule;
    Run(const Config& c, int kind) {
        opt = c.make(model.groups(c.lr));
        switch (kind % 4) {
            case 0: schedule = std::make_shared<StepLR>(*opt, 3, 0.7); break;
            case 1: {
                auto warm = std::make_shared<LinearLR>(*opt, 0.2, 1.0, 4);
                auto cosine = std::make_shared<CosineAnnealingLR>(*opt, 20);
                schedule = std::make_shared<SequentialLR>(
                    *opt, std::vector<std::shared_ptr<LRScheduler>>{warm, cosine},
                    std::vector<long>{4});
                break;
            }
            case 2:
                schedule = std::make_shared<ReduceLROnPlateau>(
                    *opt, PlateauOptions{.factor = 0.5, .patience = 2, .cooldown = 1});
                break;
            default: schedule = std::make_shared<ExponentialLR>(*opt, 0.9);
        }
    }
    void epochs(int n) {
        for (int i = 0; i < n; ++i) {
            opt->zero_grad();
            model.loss().backward();
            opt->step();
            // the plateau sees the schedule test's metric, which stalls over epochs 8..19
            if (auto* plateau = dynamic_cast<ReduceLROnPlateau*>(schedule.get()))
                plateau->step(plateau_metric(static_cast<int>(plateau->last_epoch())));
            else dynamic_cast<LRScheduler&>(*schedule).step();
        }
    }
};

}  // namespace

TEST_CASE("optim: save, load and continue is bitwise the uninterrupted run, for every optimizer") {
    int kind = 0;
    for (const auto& c : configs()) {
        CAPTURE(c.name);
        Run whole(c, kind);
        whole.epochs(20);

        const std::string model_path = temp_path("resume_model.safetensors");
        const std::string opt_path = temp_path("resume_optim.safetensors");
        {
            Run first(c, kind);
            first.epochs(10);
            save(first.model, model_path);
            save(*first.opt, opt_path, {first.schedule.get()});
        }
        Run second(c, kind);
        load(second.model, model_path);
        load(*second.opt, opt_path, {second.schedule.get()});
        CHECK(second.opt->step_count() == 10);
        second.epochs(10);

        const auto pw = whole.model.parameters(), ps = second.model.parameters();
        for (std::size_t i = 0; i < pw.size(); ++i)
            CHECK_MESSAGE(max_abs_diff(pw[i].value(), ps[i].value()) == 0.0, i);
        CHECK(whole.opt->step_count() == second.opt->step_count());
        for (std::size_t g = 0; g < 2; ++g)
            CHECK(whole.opt->groups()[g].lr == second.opt->groups()[g].lr);
        for (std::size_t i = 0; i < 3; ++i) {
            CHECK(whole.opt->state(i).step == second.opt->state(i).step);
            REQUIRE(whole.opt->state(i).buffers.size() == second.opt->state(i).buffers.size());
            for (const auto& [name, t] : whole.opt->state(i).buffers)
                CHECK_MESSAGE(max_abs_diff(t, second.opt->state(i).buffers.at(name)) == 0.0, name);
        }
        CHECK(whole.schedule->state_dict() == second.schedule->state_dict());
        CHECK(whole.opt->groups()[0].lr != c.lr);  // the schedule did act
        ++kind;
    }
}

TEST_CASE("optim: loading a state that does not fit says why and changes nothing") {
    Quad q(float64);
    Adam adam(q.groups(0.05), AdamOptions{.lr = 0.05});
    q.loss().backward();
    adam.step();
    const std::string path = temp_path("adam_state.safetensors");
    save(adam, path);

    Quad q2(float64);
    SGD sgd(q2.groups(0.1), SGDOptions{.lr = 0.1});
    CHECK_THROWS_WITH_AS(load(sgd, path), doctest::Contains("saved by Adam, loading into SGD"),
                         IOError);
    Adam one_group(Params(q2), AdamOptions{});
    CHECK_THROWS_WITH_AS(load(one_group, path),
                         doctest::Contains("2 parameter groups saved, this Adam has 1"), IOError);
    Adam fresh(q2.groups(0.05), AdamOptions{.lr = 0.05});
    StepLR s(fresh, 2);
    CHECK_THROWS_WITH_AS(load(fresh, path, {&s}),
                         doctest::Contains("0 scheduler(s) saved, 1 given"), IOError);
    CHECK(fresh.step_count() == 0);
    load(fresh, path);
    CHECK(fresh.step_count() == 1);
    CHECK(fresh.state(0).step == 1);
    CHECK(max_abs_diff(fresh.state(0).buffers.at("exp_avg"), adam.state(0).buffers.at("exp_avg")) ==
          0.0);
}

// ---- groups, skipping, checks ----

TEST_CASE("optim: groups, gradient-less parameters, zero_grad and option errors") {
    Quad q(float64);
    SGD opt(q.groups(0.1), SGDOptions{.lr = 0.1});
    REQUIRE(opt.groups().size() == 2);
    CHECK(opt.groups()[0].lr == 0.1);
    CHECK(opt.groups()[0].weight_decay == 0.0);
    CHECK(opt.groups()[1].lr == 0.05);
    CHECK(opt.groups()[1].weight_decay == 0.05);
    CHECK(opt.groups()[0].names == std::vector<std::string>{"W", "u"});

    // One SGD step by hand: v <- v - 0.05 (A v - b + 0.05 v); u has no gradient and stays.
    const Tensor v0 = q.v.value().clone(), u0 = q.u.value().clone();
    q.loss().backward();
    opt.step();
    const double g0 =
        2.0 * 1.0 + 0.5 * -1.0 + 0.0 * 2.0 - 1.0 + 0.05 * 1.0;  // (A v)_0 - b_0 + wd v_0
    CHECK(q.v.value().flat(0) == doctest::Approx(v0.flat(0) - 0.05 * g0).epsilon(1e-14));
    CHECK(max_abs_diff(q.u.value(), u0) == 0.0);

    opt.zero_grad(false);
    CHECK(q.W.grad().defined());
    CHECK(q.W.grad().flat(0) == 0.0);
    CHECK_FALSE(q.u.grad().defined());
    opt.zero_grad();
    CHECK_FALSE(q.W.grad().defined());

    CHECK_THROWS_WITH_AS(SGD(Params(q), SGDOptions{}), doctest::Contains("lr must be given"),
                         ValueError);
    CHECK_THROWS_AS(SGD(Params(q), SGDOptions{.lr = 0.1, .nesterov = true}), ValueError);
    CHECK_THROWS_AS(SGD(Params(q), SGDOptions{.lr = -1.0}), ValueError);
    CHECK_THROWS_AS(Adam(Params(q), AdamOptions{.beta1 = 1.0}), ValueError);
    CHECK_THROWS_AS(RMSprop(Params(q), RMSpropOptions{.momentum = -0.5}), ValueError);
    CHECK_THROWS_AS(Adagrad(Params(q), AdagradOptions{.lr_decay = -1.0}), ValueError);
    CHECK_THROWS_WITH_AS(Adam({ParamGroup{{q.W}}, ParamGroup{{q.W}}}),
                         doctest::Contains("more than once"), ValueError);
    const Variable not_leaf = q.W * 2.0;
    CHECK_THROWS_WITH_AS(Adam({not_leaf}), doctest::Contains("only leaf"), ValueError);
}

TEST_CASE("optim: with check_finite, a NaN gradient names the parameter and nothing is updated") {
    Generator gen(3);
    struct Model : Module {
        std::shared_ptr<Linear> fc1, fc2;
        explicit Model(Generator& g) : Module("Model") {
            fc1 = register_module("fc1", std::make_shared<Linear>(2, 3, g, float64));
            fc2 = register_module("fc2", std::make_shared<Linear>(3, 1, g, float64));
        }
    } model(gen);
    Adam adam(model, AdamOptions{.check_finite = true});
    const auto params = model.parameters();
    std::vector<Tensor> before;
    for (const auto& p : params) {
        before.push_back(p.value().clone());
        Variable(p).set_grad(Tensor::ones(p.shape(), float64));
    }
    Tensor bad = Tensor::ones(model.fc2->weight.shape(), float64);
    bad.set_flat(1, std::numeric_limits<double>::infinity());
    model.fc2->weight.set_grad(bad);
    CHECK_THROWS_WITH_AS(adam.step(),
                         doctest::Contains("parameter 'fc2.weight' ([1,3] float64) has 1 NaN/Inf"),
                         ValueError);
    for (std::size_t i = 0; i < params.size(); ++i)
        CHECK(max_abs_diff(params[i].value(), before[i]) == 0.0);
    CHECK(adam.step_count() == 0);
    CHECK(adam.state(0).buffers.empty());

    adam.set_check_finite(false);  // unchecked, the Inf reaches the weights, as in PyTorch
    adam.step();
    CHECK_FALSE(all_finite(model.fc2->weight.value()));
}

// ---- training an LSTM regression with each optimizer ----

namespace {

// y = 0.5 sum_t x_t from the last LSTM output: x [T, B, 1] -> [B, 1].
struct SeqRegressor : Module {
    static constexpr long T = 6, B = 16, H = 8;
    std::shared_ptr<LSTM> lstm;
    std::shared_ptr<Linear> head;
    explicit SeqRegressor(Generator& g) : Module("SeqRegressor") {
        lstm = register_module("lstm", std::make_shared<LSTM>(1, H, RecurrentOptions{}, g));
        head = register_module("head", std::make_shared<Linear>(H, 1, g, float32));
    }
    Variable forward(const Variable& x) {
        const Variable out = lstm->forward(x).output;  // [T, B, H]
        return (*head)(squeeze(narrow(out, 0, T - 1, 1), 0));
    }
};

// Trains a fresh model (same seed, same data) and returns {first loss, final loss}.
std::pair<double, double> train(const Make& make, int steps) {
    Generator gen(11);
    SeqRegressor model(gen);
    const Tensor xs = gen.uniform({SeqRegressor::T, SeqRegressor::B, 1}, -1, 1, float32);
    std::vector<double> ys(SeqRegressor::B, 0.0);
    for (std::size_t i = 0; i < xs.numel(); ++i) ys[i % SeqRegressor::B] += 0.5 * xs.flat(i);
    const Variable x(xs), y(Tensor::from(ys, {SeqRegressor::B, 1}, float32));
    auto opt = make(Params(model));
    double initial = 0;
    for (int step = 0; step < steps; ++step) {
        opt->zero_grad();
        Variable loss = mse_loss(model.forward(x), y);
        loss.backward();
        clip_grad_norm(opt->parameters(), 5.0);
        opt->step();
        if (step == 0) initial = loss.item();
    }
    return {initial, mse_loss(model.forward(x), y).item()};
}

}  // namespace

// From a loss of 0.50 (150 full-batch steps, gradients clipped to norm 5); reached losses are
// 4e-4 (SGD, Adam, AdamW) to 4e-3 (RMSprop).
TEST_CASE("optim: each optimizer trains the LSTM regression below loss 0.01") {
    struct Case {
        std::string name;
        Make make;
        double below;
    };
    const std::vector<Case> cases = {
        {"SGD", maker<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9}), 0.01},
        {"Adam", maker<Adam>(AdamOptions{.lr = 0.03}), 0.01},
        {"Adam amsgrad", maker<Adam>(AdamOptions{.lr = 0.03, .amsgrad = true}), 0.01},
        {"AdamW", maker<AdamW>(AdamWOptions{.lr = 0.03}), 0.01},
        {"RMSprop", maker<RMSprop>(RMSpropOptions{.lr = 0.01}), 0.01},
        {"Adagrad", maker<Adagrad>(AdagradOptions{.lr = 0.1}), 0.01},
    };
    for (const auto& c : cases) {
        const auto [initial, final_loss] = train(c.make, 150);
        CHECK_MESSAGE(initial > 0.2, c.name);
        CHECK_MESSAGE(final_loss < c.below, c.name, ": final loss ", final_loss);
    }
}
