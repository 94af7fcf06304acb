// Learning-rate schedules, as PyTorch's torch.optim.lr_scheduler: each one sets the lr of every
// group of an optimizer. They use PyTorch's chainable (recursive) forms, so several schedulers
// may step the same optimizer and compose, and the lr sequences match PyTorch's exactly.
//
//   Adam opt(model, AdamOptions{.lr = 1e-3});
//   auto warm = std::make_shared<LinearLR>(opt, 0.1, 1.0, 5);
//   auto cosine = std::make_shared<CosineAnnealingLR>(opt, 95);
//   SequentialLR schedule(opt, {warm, cosine}, {5});   // 5 epochs of warm-up, then cosine
//   for (epoch ...) { ...opt.step()...; schedule.step(); }
//
// A scheduler keeps a reference to its optimizer, which must outlive it. Constructing one
// applies the schedule's epoch 0 (LinearLR scales the lr by start_factor at once).
// Checkpoints: save(optimizer, path, {&schedule}) / load(optimizer, path, {&schedule}).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "optim/optimizer.hpp"

namespace tapegrad {

class Scheduler {
public:
    virtual ~Scheduler() = default;
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    const std::string& type_name() const { return type_name_; }
    Optimizer& optimizer() const { return *optimizer_; }
    // Each group's lr as this scheduler last set (or found) it.
    const std::vector<double>& last_lr() const { return last_lr_; }

    // Counters and lrs as exact text, for checkpoints; load checks the type and every key.
    virtual std::map<std::string, std::string> state_dict() const;
    virtual void load_state_dict(const std::map<std::string, std::string>& state);

protected:
    Scheduler(Optimizer& optimizer, std::string type_name);
    std::vector<double> group_lrs() const;
    void set_group_lrs(const std::vector<double>& lrs);
    // ValueError unless the optimizer still has the `n` groups the schedule was built for.
    void require_groups(std::size_t n) const;

    Optimizer* optimizer_;
    std::string type_name_;
    std::vector<double> last_lr_;
};

// Epoch-based schedules (PyTorch's _LRScheduler): step() once per epoch, after opt.step().
class LRScheduler : public Scheduler {
public:
    virtual void step();
    long last_epoch() const { return last_epoch_; }
    const std::vector<double>& base_lrs() const { return base_lrs_; }

    std::map<std::string, std::string> state_dict() const override;
    void load_state_dict(const std::map<std::string, std::string>& state) override;

protected:
    // Records each group's initial_lr (if no scheduler did yet) as the base lrs.
    LRScheduler(Optimizer& optimizer, std::string type_name);
    // Epoch 0; every derived constructor ends with it (PyTorch's _initial_step).
    void initial_step();
    // Jumps to `epoch`, with the closed form where there is one (used by SequentialLR).
    void step_to(long epoch);
    // The next lrs from the current group lrs (PyTorch's get_lr), for last_epoch_.
    virtual std::vector<double> chained_lr() const = 0;
    virtual std::optional<std::vector<double>> closed_form_lr() const { return std::nullopt; }

    std::vector<double> base_lrs_;
    long last_epoch_ = -1;
    long step_count_ = 0;

    friend class SequentialLR;
};

// lr * gamma every step_size epochs.
class StepLR : public LRScheduler {
public:
    StepLR(Optimizer& optimizer, long step_size, double gamma = 0.1);

private:
    std::vector<double> chained_lr() const override;
    std::optional<std::vector<double>> closed_form_lr() const override;
    long step_size_;
    double gamma_;
};

// lr * gamma every epoch.
class ExponentialLR : public LRScheduler {
public:
    ExponentialLR(Optimizer& optimizer, double gamma);

private:
    std::vector<double> chained_lr() const override;
    std::optional<std::vector<double>> closed_form_lr() const override;
    double gamma_;
};

// eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2, and back up after T_max
// (PyTorch's recursive form, which keeps going as a cosine of period 2 T_max).
class CosineAnnealingLR : public LRScheduler {
public:
    CosineAnnealingLR(Optimizer& optimizer, long T_max, double eta_min = 0);

private:
    std::vector<double> chained_lr() const override;
    std::optional<std::vector<double>> closed_form_lr() const override;
    long T_max_;
    double eta_min_;
};

// Linear warm-up (or decay): the factor goes from start_factor to end_factor in total_iters
// epochs, then stays. 0 < start_factor <= 1, 0 <= end_factor <= 1.
class LinearLR : public LRScheduler {
public:
    LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3, double end_factor = 1.0,
             long total_iters = 5);

private:
    std::vector<double> chained_lr() const override;
    std::optional<std::vector<double>> closed_form_lr() const override;
    double start_factor_, end_factor_;
    long total_iters_;
};

// schedulers[0] until milestones[0], then schedulers[1] restarted at its epoch 0, and so on
// (warm-up then cosine). All must drive `optimizer`; milestones increase.
class SequentialLR : public LRScheduler {
public:
    SequentialLR(Optimizer& optimizer, std::vector<std::shared_ptr<LRScheduler>> schedulers,
                 std::vector<long> milestones);
    void step() override;

    std::map<std::string, std::string> state_dict() const override;
    void load_state_dict(const std::map<std::string, std::string>& state) override;

private:
    std::vector<double> chained_lr() const override { return group_lrs(); }
    std::vector<std::shared_ptr<LRScheduler>> schedulers_;
    std::vector<long> milestones_;
};

enum class PlateauMode { min, max };
enum class ThresholdMode { rel, abs };

struct PlateauOptions {
    PlateauMode mode = PlateauMode::min;
    double factor = 0.1;  // new lr = max(lr * factor, min_lr); 0 <= factor < 1
    long patience = 10;   // epochs without improvement before a reduction
    double threshold = 1e-4;
    ThresholdMode threshold_mode =
        ThresholdMode::rel;           // rel, min: better if < best * (1 - threshold)
    long cooldown = 0;                // epochs to wait after a reduction
    std::vector<double> min_lr = {};  // empty: 0; one value: every group; else one per group
    double eps = 1e-8;                // reductions smaller than eps are skipped
};

// Reduces the lrs when a metric stops improving: step(metric) once per epoch.
class ReduceLROnPlateau : public Scheduler {
public:
    explicit ReduceLROnPlateau(Optimizer& optimizer, PlateauOptions options = {});
    void step(double metric);

    double best() const { return best_; }
    long num_bad_epochs() const { return num_bad_epochs_; }
    long last_epoch() const { return last_epoch_; }

    std::map<std::string, std::string> state_dict() const override;
    void load_state_dict(const std::map<std::string, std::string>& state) override;

private:
    bool is_better(double current) const;
    PlateauOptions options_;
    std::vector<double> min_lrs_;
    double best_;
    long num_bad_epochs_ = 0;
    long cooldown_counter_ = 0;
    long last_epoch_ = 0;
};

}  // namespace tapegrad
