// What several test files share.
#pragma once

#include <unistd.h>
#include <filesystem>
#include <functional>
#include <string>
#include <type_traits>

#include <fmt/format.h>

#include <tapegrad/core/error.hpp>

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

// A folder of this process's own (tapegrad_<tag>_<pid> in the temp folder), so concurrent test
// runs do not share files.
inline std::filesystem::path scratch_dir(const std::string& tag) {
    const auto dir =
        std::filesystem::temp_directory_path() / fmt::format("tapegrad_{}_{}", tag, ::getpid());
    std::filesystem::create_directories(dir);
    return dir;
}

}  // namespace tapegrad::test
