#include "optim/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include <fmt/format.h>

namespace tapegrad {

using detail::format_double;
using detail::parse_double;
using detail::require_option;
using State = std::map<std::string, std::string>;

namespace {

std::string format_list(const std::vector<double>& values) {
    std::string out;
    for (std::size_t i = 0; i < values.size(); ++i)
        out += (i ? "," : "") + format_double(values[i]);
    return out;
}

const std::string& entry(const State& state, const std::string& type, const std::string& key) {
    auto it = state.find(key);
    if (it == state.end())
        throw IOError(fmt::format("scheduler state ({}): the entry '{}' is missing", type, key));
    return it->second;
}

long parse_long(const State& state, const std::string& type, const std::string& key) {
    const double v = parse_double(entry(state, type, key), key);
    if (v != std::floor(v))
        throw IOError(fmt::format("scheduler state ({}): '{}' is not an integer", type, key));
    return static_cast<long>(v);
}

std::vector<double> parse_list(const State& state, const std::string& type, const std::string& key,
                               std::size_t expected) {
    const std::string& text = entry(state, type, key);
    std::vector<double> out;
    for (std::size_t start = 0; !text.empty() && start <= text.size();) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        out.push_back(parse_double(text.substr(start, comma - start), key));
        start = comma + 1;
    }
    if (out.size() != expected)
        throw IOError(
            fmt::format("scheduler state ({}): '{}' has {} values, the optimizer has {} groups",
                        type, key, out.size(), expected));
    return out;
}

// Builds {f(lr, base_lr)} over the groups.
template <class F>
std::vector<double> each(const std::vector<double>& lrs, const std::vector<double>& base, F&& f) {
    std::vector<double> out(lrs.size());
    for (std::size_t i = 0; i < lrs.size(); ++i) out[i] = f(lrs[i], base[i]);
    return out;
}

}  // namespace

// ---- Scheduler ----

Scheduler::Scheduler(Optimizer& optimizer, std::string type_name)
    : optimizer_(&optimizer), type_name_(std::move(type_name)), last_lr_(group_lrs()) {}

std::vector<double> Scheduler::group_lrs() const {
    std::vector<double> out;
    for (const auto& g : optimizer_->groups()) out.push_back(g.lr);
    return out;
}

void Scheduler::require_groups(std::size_t n) const {
    if (optimizer_->groups().size() != n)
        throw ValueError(
            fmt::format("{}: the optimizer has {} parameter groups, the schedule was built for {}",
                        type_name_, optimizer_->groups().size(), n));
}

void Scheduler::set_group_lrs(const std::vector<double>& lrs) {
    require_groups(lrs.size());
    for (std::size_t i = 0; i < lrs.size(); ++i) optimizer_->groups()[i].lr = lrs[i];
    last_lr_ = lrs;
}

State Scheduler::state_dict() const {
    return {{"type", type_name_}, {"last_lr", format_list(last_lr_)}};
}

void Scheduler::load_state_dict(const State& state) {
    if (entry(state, type_name_, "type") != type_name_)
        throw IOError(fmt::format("scheduler state: saved by a {}, loading into a {}",
                                  state.at("type"), type_name_));
    last_lr_ = parse_list(state, type_name_, "last_lr", optimizer_->groups().size());
}

// ---- LRScheduler ----

LRScheduler::LRScheduler(Optimizer& optimizer, std::string type_name)
    : Scheduler(optimizer, std::move(type_name)) {
    for (auto& g : optimizer.groups()) {
        if (!g.initial_lr) g.initial_lr = g.lr;
        base_lrs_.push_back(*g.initial_lr);
    }
}

void LRScheduler::initial_step() {
    step_count_ = 0;
    LRScheduler::step();
}

void LRScheduler::step() {
    require_groups(base_lrs_.size());
    ++step_count_;
    ++last_epoch_;
    set_group_lrs(chained_lr());
}

void LRScheduler::step_to(long epoch) {
    require_groups(base_lrs_.size());
    ++step_count_;
    last_epoch_ = epoch;
    auto closed = closed_form_lr();
    set_group_lrs(closed ? *closed : chained_lr());
}

State LRScheduler::state_dict() const {
    State s = Scheduler::state_dict();
    s["last_epoch"] = std::to_string(last_epoch_);
    s["step_count"] = std::to_string(step_count_);
    s["base_lrs"] = format_list(base_lrs_);
    return s;
}

// Each load parses everything before it changes anything.
void LRScheduler::load_state_dict(const State& state) {
    const long last_epoch = parse_long(state, type_name_, "last_epoch");
    const long step_count = parse_long(state, type_name_, "step_count");
    auto base_lrs = parse_list(state, type_name_, "base_lrs", optimizer_->groups().size());
    Scheduler::load_state_dict(state);
    last_epoch_ = last_epoch;
    step_count_ = step_count;
    base_lrs_ = std::move(base_lrs);
}

// ---- StepLR ----

StepLR::StepLR(Optimizer& optimizer, long step_size, double gamma)
    : LRScheduler(optimizer, "StepLR"), step_size_(step_size), gamma_(gamma) {
    require_option(step_size > 0, type_name_, "step_size must be > 0",
                   static_cast<double>(step_size));
    initial_step();
}

std::vector<double> StepLR::chained_lr() const {
    if (last_epoch_ == 0 || last_epoch_ % step_size_ != 0) return group_lrs();
    return each(group_lrs(), base_lrs_, [&](double lr, double) { return lr * gamma_; });
}

std::optional<std::vector<double>> StepLR::closed_form_lr() const {
    return each(group_lrs(), base_lrs_, [&](double, double base) {
        return base * std::pow(gamma_, static_cast<double>(last_epoch_ / step_size_));
    });
}

// ---- ExponentialLR ----

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma)
    : LRScheduler(optimizer, "ExponentialLR"), gamma_(gamma) {
    initial_step();
}

std::vector<double> ExponentialLR::chained_lr() const {
    if (last_epoch_ == 0) return group_lrs();
    return each(group_lrs(), base_lrs_, [&](double lr, double) { return lr * gamma_; });
}

std::optional<std::vector<double>> ExponentialLR::closed_form_lr() const {
    return each(group_lrs(), base_lrs_, [&](double, double base) {
        return base * std::pow(gamma_, static_cast<double>(last_epoch_));
    });
}

// ---- CosineAnnealingLR ----

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, long T_max, double eta_min)
    : LRScheduler(optimizer, "CosineAnnealingLR"), T_max_(T_max), eta_min_(eta_min) {
    require_option(T_max > 0, type_name_, "T_max must be > 0", static_cast<double>(T_max));
    initial_step();
}

std::vector<double> CosineAnnealingLR::chained_lr() const {
    constexpr double pi = std::numbers::pi;
    const double e = static_cast<double>(last_epoch_), T = static_cast<double>(T_max_),
                 eta = eta_min_;
    if (last_epoch_ == 0) return group_lrs();
    if (step_count_ == 1 && last_epoch_ > 0)
        return each(group_lrs(), base_lrs_, [&](double, double base) {
            return eta + (base - eta) * (1 + std::cos(e * pi / T)) / 2;
        });
    // Restarting the period: the cosine's lowest point has just been passed.
    if ((last_epoch_ - 1 - T_max_) % (2 * T_max_) == 0)
        return each(group_lrs(), base_lrs_, [&](double lr, double base) {
            return lr + (base - eta) * (1 - std::cos(pi / T)) / 2;
        });
    // lr_e - eta = (lr_{e-1} - eta) (1 + cos(pi e / T)) / (1 + cos(pi (e - 1) / T))
    return each(group_lrs(), base_lrs_, [&](double lr, double) {
        return (1 + std::cos(pi * e / T)) / (1 + std::cos(pi * (e - 1) / T)) * (lr - eta) + eta;
    });
}

std::optional<std::vector<double>> CosineAnnealingLR::closed_form_lr() const {
    const double e = static_cast<double>(last_epoch_), T = static_cast<double>(T_max_);
    return each(group_lrs(), base_lrs_, [&](double, double base) {
        return eta_min_ + (base - eta_min_) * (1 + std::cos(std::numbers::pi * e / T)) / 2;
    });
}

// ---- LinearLR ----

LinearLR::LinearLR(Optimizer& optimizer, double start_factor, double end_factor, long total_iters)
    : LRScheduler(optimizer, "LinearLR"),
      start_factor_(start_factor),
      end_factor_(end_factor),
      total_iters_(total_iters) {
    require_option(start_factor > 0 && start_factor <= 1, type_name_,
                   "start_factor must be in (0, 1]", start_factor);
    require_option(end_factor >= 0 && end_factor <= 1, type_name_, "end_factor must be in [0, 1]",
                   end_factor);
    require_option(total_iters > 0, type_name_, "total_iters must be > 0",
                   static_cast<double>(total_iters));
    initial_step();
}

std::vector<double> LinearLR::chained_lr() const {
    if (last_epoch_ == 0)
        return each(group_lrs(), base_lrs_, [&](double lr, double) { return lr * start_factor_; });
    if (last_epoch_ > total_iters_) return group_lrs();
    // factor_e / factor_{e-1} with factor_e = start + (end - start) e / total
    const double d = end_factor_ - start_factor_;
    return each(group_lrs(), base_lrs_, [&](double lr, double) {
        return lr * (1. + d / (static_cast<double>(total_iters_) * start_factor_ +
                               static_cast<double>(last_epoch_ - 1) * d));
    });
}

std::optional<std::vector<double>> LinearLR::closed_form_lr() const {
    const double done = static_cast<double>(std::min(total_iters_, last_epoch_));
    return each(group_lrs(), base_lrs_, [&](double, double base) {
        return base * (start_factor_ +
                       (end_factor_ - start_factor_) * done / static_cast<double>(total_iters_));
    });
}

// ---- SequentialLR ----

SequentialLR::SequentialLR(Optimizer& optimizer,
                           std::vector<std::shared_ptr<LRScheduler>> schedulers,
                           std::vector<long> milestones)
    : LRScheduler(optimizer, "SequentialLR"),
      schedulers_(std::move(schedulers)),
      milestones_(std::move(milestones)) {
    if (schedulers_.empty()) throw ValueError("SequentialLR: no schedulers were given");
    for (std::size_t i = 0; i < schedulers_.size(); ++i) {
        if (!schedulers_[i]) throw ValueError(fmt::format("SequentialLR: scheduler {} is null", i));
        if (&schedulers_[i]->optimizer() != &optimizer)
            throw ValueError(fmt::format("SequentialLR: scheduler {} ({}) drives another optimizer",
                                         i, schedulers_[i]->type_name()));
    }
    if (milestones_.size() + 1 != schedulers_.size())
        throw ValueError(fmt::format("SequentialLR: {} schedulers need {} milestones, got {}",
                                     schedulers_.size(), schedulers_.size() - 1,
                                     milestones_.size()));
    for (std::size_t i = 1; i < milestones_.size(); ++i)
        if (milestones_[i] <= milestones_[i - 1])
            throw ValueError(fmt::format("SequentialLR: milestones must increase, got {} after {}",
                                         milestones_[i], milestones_[i - 1]));
    // As PyTorch: back to the initial lrs, undo the step each scheduler's constructor made,
    // and apply epoch 0 of the first one only.
    last_epoch_ = 0;
    for (auto& g : optimizer.groups()) g.lr = *g.initial_lr;
    for (auto& s : schedulers_) --s->last_epoch_;
    schedulers_[0]->initial_step();
    last_lr_ = schedulers_[0]->last_lr();
}

void SequentialLR::step() {
    ++last_epoch_;
    const std::size_t idx =
        std::upper_bound(milestones_.begin(), milestones_.end(), last_epoch_) - milestones_.begin();
    LRScheduler& s = *schedulers_[idx];
    if (idx > 0 && milestones_[idx - 1] == last_epoch_) s.step_to(0);
    else s.step();
    last_lr_ = s.last_lr();
}

State SequentialLR::state_dict() const {
    State out = LRScheduler::state_dict();
    for (std::size_t i = 0; i < schedulers_.size(); ++i)
        for (auto& [k, v] : schedulers_[i]->state_dict()) out[fmt::format("{}.{}", i, k)] = v;
    return out;
}

void SequentialLR::load_state_dict(const State& state) {
    std::vector<State> inner(schedulers_.size());
    for (std::size_t i = 0; i < schedulers_.size(); ++i) {
        const std::string prefix = fmt::format("{}.", i);
        for (auto& [k, v] : state)
            if (k.rfind(prefix, 0) == 0) inner[i][k.substr(prefix.size())] = v;
        if (entry(inner[i], type_name_, "type") != schedulers_[i]->type_name())
            throw IOError(fmt::format(
                "scheduler state (SequentialLR): scheduler {} was a {}, loading into a {}", i,
                inner[i]["type"], schedulers_[i]->type_name()));
    }
    LRScheduler::load_state_dict(state);
    for (std::size_t i = 0; i < schedulers_.size(); ++i) schedulers_[i]->load_state_dict(inner[i]);
}

// ---- ReduceLROnPlateau ----

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, PlateauOptions options)
    : Scheduler(optimizer, "ReduceLROnPlateau"), options_(std::move(options)) {
    const auto& o = options_;
    require_option(o.factor >= 0 && o.factor < 1, type_name_, "factor must be in [0, 1)", o.factor);
    require_option(o.patience >= 0, type_name_, "patience must be >= 0",
                   static_cast<double>(o.patience));
    require_option(o.cooldown >= 0, type_name_, "cooldown must be >= 0",
                   static_cast<double>(o.cooldown));
    require_option(o.threshold >= 0, type_name_, "threshold must be >= 0", o.threshold);
    const std::size_t n = optimizer.groups().size();
    if (o.min_lr.size() > 1 && o.min_lr.size() != n)
        throw ValueError(fmt::format("ReduceLROnPlateau: {} min_lr values for {} parameter groups",
                                     o.min_lr.size(), n));
    min_lrs_ = o.min_lr.size() == n ? o.min_lr
                                    : std::vector<double>(n, o.min_lr.empty() ? 0.0 : o.min_lr[0]);
    best_ = o.mode == PlateauMode::min ? std::numeric_limits<double>::infinity()
                                       : -std::numeric_limits<double>::infinity();
}

bool ReduceLROnPlateau::is_better(double a) const {
    const double t = options_.threshold;
    const bool rel = options_.threshold_mode == ThresholdMode::rel;
    if (options_.mode == PlateauMode::min) return rel ? a < best_ * (1. - t) : a < best_ - t;
    return rel ? a > best_ * (t + 1.) : a > best_ + t;
}

void ReduceLROnPlateau::step(double metric) {
    require_groups(min_lrs_.size());
    last_epoch_ += 1;
    if (is_better(metric)) {
        best_ = metric;
        num_bad_epochs_ = 0;
    } else {
        ++num_bad_epochs_;
    }
    if (cooldown_counter_ > 0) {  // bad epochs during the cooldown do not count
        --cooldown_counter_;
        num_bad_epochs_ = 0;
    }
    std::vector<double> lrs = group_lrs();
    if (num_bad_epochs_ > options_.patience) {
        for (std::size_t i = 0; i < lrs.size(); ++i) {
            const double reduced = std::max(lrs[i] * options_.factor, min_lrs_[i]);
            if (lrs[i] - reduced > options_.eps) lrs[i] = reduced;
        }
        cooldown_counter_ = options_.cooldown;
        num_bad_epochs_ = 0;
    }
    set_group_lrs(lrs);
}

State ReduceLROnPlateau::state_dict() const {
    State s = Scheduler::state_dict();
    s["best"] = format_double(best_);
    s["num_bad_epochs"] = std::to_string(num_bad_epochs_);
    s["cooldown_counter"] = std::to_string(cooldown_counter_);
    s["last_epoch"] = std::to_string(last_epoch_);
    return s;
}

void ReduceLROnPlateau::load_state_dict(const State& state) {
    const double best = parse_double(entry(state, type_name_, "best"), "best");
    const long bad = parse_long(state, type_name_, "num_bad_epochs");
    const long cooldown = parse_long(state, type_name_, "cooldown_counter");
    const long last_epoch = parse_long(state, type_name_, "last_epoch");
    Scheduler::load_state_dict(state);
    best_ = best;
    num_bad_epochs_ = bad;
    cooldown_counter_ = cooldown;
    last_epoch_ = last_epoch;
}

}  // namespace tapegrad
