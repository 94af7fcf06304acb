// Run-time element types. One model definition runs in float32 or float64; kernels are
// written once as templates and instantiated for both through `dispatch`. int64 tensors hold
// what is counted, not computed: token ids, class labels, sequence lengths, indices. Ops that
// take them say so; every other op computes in float32 or float64 only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace tapegrad {

enum class DType { float32, float64, int64 };

inline constexpr DType float32 = DType::float32;
inline constexpr DType float64 = DType::float64;
inline constexpr DType int64 = DType::int64;

constexpr std::string_view name(DType dtype) {
    switch (dtype) {
        case DType::float32: return "float32";
        case DType::float64: return "float64";
        case DType::int64: return "int64";
    }
    return "?";
}

constexpr std::size_t itemsize(DType dtype) { return dtype == DType::float32 ? 4 : 8; }
constexpr bool is_floating(DType dtype) { return dtype != DType::int64; }

template <class T>
constexpr DType dtype_of() {
    static_assert(
        std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int64_t>,
        "tapegrad tensors hold float, double or std::int64_t");
    if constexpr (std::is_same_v<T, float>) return DType::float32;
    else if constexpr (std::is_same_v<T, double>) return DType::float64;
    else return DType::int64;
}

namespace detail {
// DTypeError: an int64 tensor reached code that computes in floating point.
[[noreturn]] void not_floating(std::string_view what);
}  // namespace detail

// Calls f.template operator()<T>() with T = float or double as `dtype` says:
//   dispatch(t.dtype(), [&]<class T>() { ... });
// An int64 dtype throws DTypeError (code that takes integer tensors checks them first).
template <class F>
decltype(auto) dispatch(DType dtype, F&& f) {
    if (dtype == DType::float32) return f.template operator()<float>();
    if (dtype == DType::int64) [[unlikely]]
        detail::not_floating("this computation");
    return f.template operator()<double>();
}

// The same over every dtype, int64 included: for code that only moves or converts elements.
template <class F>
decltype(auto) dispatch_any(DType dtype, F&& f) {
    if (dtype == DType::int64) return f.template operator()<std::int64_t>();
    return dispatch(dtype, std::forward<F>(f));
}

}  // namespace tapegrad
