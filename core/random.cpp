#include "core/random.hpp"

#include <cmath>
#include <numbers>
#include <utility>
#include <vector>

namespace tapegrad {

namespace {
std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

void Generator::seed(std::uint64_t seed) {
    for (auto& word : s_) word = splitmix64(seed);
    has_spare_ = false;
}

void Generator::set_state(const State& st) {
    for (int i = 0; i < 4; ++i) s_[i] = st.s[i];
    has_spare_ = st.has_spare;
    spare_ = st.spare;
}

std::uint64_t Generator::next_u64() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
}

double Generator::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Generator::uniform(double low, double high) { return low + (high - low) * uniform(); }

double Generator::normal() {
    if (has_spare_) {
        has_spare_ = false;
        return spare_;
    }
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    spare_ = radius * std::sin(2.0 * std::numbers::pi * u2);
    has_spare_ = true;
    return radius * std::cos(2.0 * std::numbers::pi * u2);
}

std::uint64_t Generator::below(std::uint64_t n) {
    if (n == 0) throw ValueError("Generator::below: n must be positive");
    // Lemire's method without the rejection step's bias: reject the short tail.
    const std::uint64_t limit = -n % n;
    for (;;) {
        const std::uint64_t x = next_u64();
        const unsigned __int128 m = static_cast<unsigned __int128>(x) * n;
        if (static_cast<std::uint64_t>(m) >= limit) return static_cast<std::uint64_t>(m >> 64);
    }
}

Tensor Generator::uniform(const Shape& shape, double low, double high, DType dtype) {
    Tensor t = Tensor::empty(shape, dtype);
    dispatch(dtype, [&]<class T>() {
        for (auto& v : t.mutable_xt<T>()) v = static_cast<T>(uniform(low, high));
    });
    return t;
}

Tensor Generator::normal(const Shape& shape, double mean, double stddev, DType dtype) {
    Tensor t = Tensor::empty(shape, dtype);
    dispatch(dtype, [&]<class T>() {
        for (auto& v : t.mutable_xt<T>()) v = static_cast<T>(mean + stddev * normal());
    });
    return t;
}

Tensor randperm(std::size_t n, Generator& gen) {
    std::vector<std::int64_t> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = static_cast<std::int64_t>(i);
    for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[gen.below(i)]);
    return Tensor::from(order, Shape{n});
}

}  // namespace tapegrad
