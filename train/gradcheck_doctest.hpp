// doctest helpers: a failing check prints the whole gradcheck report.
//   CHECK_GRADCHECK(f, inputs);            CHECK_GRADCHECK(f, inputs, options);
//   CHECK_GRADGRADCHECK(f, inputs);
#pragma once

#include <doctest/doctest.h>

#include "train/gradcheck.hpp"

#define CHECK_GRADCHECK(...)                                              \
    do {                                                                  \
        const auto tapegrad_report_ = ::tapegrad::gradcheck(__VA_ARGS__); \
        CHECK_MESSAGE(tapegrad_report_.ok(), tapegrad_report_.str());     \
    } while (false)

#define CHECK_GRADGRADCHECK(...)                                              \
    do {                                                                      \
        const auto tapegrad_report_ = ::tapegrad::gradgradcheck(__VA_ARGS__); \
        CHECK_MESSAGE(tapegrad_report_.ok(), tapegrad_report_.str());         \
    } while (false)
