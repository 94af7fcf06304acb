// What several test files share.
#pragma once

#include <unistd.h>
#include <bit>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/core/error.hpp>
#include <tapegrad/core/tensor.hpp>

namespace tapegrad::test {

// The message of the tapegrad error f throws, "(wrong exception type) ..." when it is not an E,
// "(no exception)" when f returns.
template <class E = Error>
std::string message_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        if constexpr (!std::is_same_v<E, Error>)
            if (dynamic_cast<const E*>(&e) == nullptr)
                return std::string("(wrong exception type) ") + e.what();
        return e.what();
    }
    return "(no exception)";
}

// Whether an error message contains `part`.
inline bool has(const std::string& message, const std::string& part) {
    return message.find(part) != std::string::npos;
}

// Same shape, dtype and bits (NaN payloads and the sign of zero included).
inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
    if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
    for (std::size_t i = 0; i < a.numel(); ++i)
        if (std::bit_cast<std::uint64_t>(a.flat(i)) != std::bit_cast<std::uint64_t>(b.flat(i)))
            return false;
    return true;
}

// x [T, B, F] with every step past its sequence's length set to `fill`.
inline Tensor padded_with(const Tensor& x, const std::vector<std::size_t>& lengths, double fill) {
    Tensor p = x.clone();
    const std::size_t T = x.shape()[0], B = x.shape()[1], F = x.shape()[2];
    for (std::size_t t = 0; t < T; ++t)
        for (std::size_t b = 0; b < B; ++b)
            if (t >= lengths[b])
                for (std::size_t f = 0; f < F; ++f) p.set_flat((t * B + b) * F + f, fill);
    return p;
}

// A folder of this process's own (tapegrad_<tag>_<pid> in the temp folder), so concurrent test
// runs do not share files.
inline std::filesystem::path scratch_dir(const std::string& tag) {
    const auto dir =
        std::filesystem::temp_directory_path() / fmt::format("tapegrad_{}_{}", tag, ::getpid());
    std::filesystem::create_directories(dir);
    return dir;
}

}  // namespace tapegrad::test
