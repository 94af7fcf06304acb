#include "train/safetensors.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace tapegrad {

namespace {
using nlohmann::json;

// A header larger than this is not a real file's (the reference implementation caps it too).
constexpr std::uint64_t max_header_bytes = 100'000'000;

[[noreturn]] void io_fail(const std::string& path, const std::string& what) {
    throw IOError(fmt::format("safetensors '{}': {}", path, what));
}

const char* dtype_code(DType dt) { return dt == float32 ? "F32" : "F64"; }

void write_all(int fd, const char* data, std::size_t n, const std::string& path) {
    while (n > 0) {
        const ssize_t w = ::write(fd, data, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            io_fail(path, fmt::format("write failed: {}", std::strerror(errno)));
        }
        data += w;
        n -= static_cast<std::size_t>(w);
    }
}
}  // namespace

const Tensor* TensorFile::find(const std::string& name) const {
    for (const auto& [n, t] : tensors)
        if (n == name) return &t;
    return nullptr;
}

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
    static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");
    json header = json::object();
    std::uint64_t offset = 0;
    for (const auto& [name, t] : tensors) {
        if (name == "__metadata__" || name.empty())
            io_fail(path, fmt::format("invalid tensor name '{}'", name));
        if (header.contains(name)) io_fail(path, fmt::format("duplicate tensor name '{}'", name));
        if (!t.defined()) io_fail(path, fmt::format("tensor '{}' is undefined", name));
        header[name] = {{"dtype", dtype_code(t.dtype())},
                        {"shape", std::vector<std::size_t>(t.shape().begin(), t.shape().end())},
                        {"data_offsets", {offset, offset + t.nbytes()}}};
        offset += t.nbytes();
    }
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
    const std::uint64_t n = text.size();

    const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) io_fail(path, fmt::format("cannot create '{}': {}", tmp, std::strerror(errno)));
    try {
        char len[8];
        std::memcpy(len, &n, 8);
        write_all(fd, len, 8, path);
        write_all(fd, text.data(), text.size(), path);
        for (const auto& [name, t] : tensors)
            dispatch(t.dtype(), [&]<class T>() {
                write_all(fd, reinterpret_cast<const char*>(t.xt<T>().data()), t.nbytes(), path);
            });
        if (::fsync(fd) != 0) io_fail(path, fmt::format("fsync failed: {}", std::strerror(errno)));
    } catch (...) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    ::close(fd);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        io_fail(path,
                fmt::format("cannot rename the temporary file into place: {}", std::strerror(err)));
    }
    // Make the rename itself durable.
    std::string dir =
        path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
    if (dir.empty()) dir = ".";
    if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

TensorFile load_safetensors(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) io_fail(path, fmt::format("cannot open: {}", std::strerror(errno)));
    in.seekg(0, std::ios::end);
    const auto file_size = static_cast<std::uint64_t>(in.tellg());
    in.seekg(0);
    if (file_size < 8)
        io_fail(path, fmt::format("truncated: {} bytes, shorter than the 8-byte header length",
                                  file_size));
    std::uint64_t n = 0;
    in.read(reinterpret_cast<char*>(&n), 8);
    if (n > max_header_bytes || n > file_size - 8)
        io_fail(path,
                fmt::format("header length {} does not fit in the file ({} bytes)", n, file_size));
    std::string text(n, '\0');
    in.read(text.data(), static_cast<std::streamsize>(n));
    // The format pads a header with spaces; a NUL byte would end nlohmann's parse early and
    // hide what follows it.
    if (const auto nul = text.find('\0'); nul != std::string::npos)
        io_fail(path, fmt::format("the JSON header holds a NUL byte at offset {} of {}", nul, n));
    json header;
    try {
        header = json::parse(text);
    } catch (const json::exception& e) {
        io_fail(path, fmt::format("the JSON header does not parse: {}", e.what()));
    }
    if (!header.is_object()) io_fail(path, "the JSON header is not an object");
    const std::uint64_t data_size = file_size - 8 - n;

    TensorFile out;
    struct Range {
        std::uint64_t begin, end;
        std::string name;
    };
    std::vector<Range> ranges;
    for (const auto& [name, entry] : header.items()) {
        if (name == "__metadata__") {
            if (!entry.is_object()) io_fail(path, "__metadata__ is not an object");
            for (const auto& [k, v] : entry.items()) {
                if (!v.is_string())
                    io_fail(path, fmt::format("__metadata__ value '{}' is not a string", k));
                out.metadata[k] = v.get<std::string>();
            }
            continue;
        }
        auto bad = [&](const std::string& what) {
            io_fail(path, fmt::format("tensor '{}': {}", name, what));
        };
        if (!entry.is_object()) bad("entry is not an object");
        if (!entry.contains("dtype")) bad("missing dtype");
        if (!entry["dtype"].is_string())
            bad(fmt::format("dtype {} is not a string", entry["dtype"].dump()));
        const std::string code = entry["dtype"].get<std::string>();
        if (code != "F32" && code != "F64")
            bad(fmt::format("dtype {} is not supported (tapegrad reads F32 and F64)", code));
        const DType dt = code == "F32" ? float32 : float64;
        if (!entry.contains("shape") || !entry["shape"].is_array()) bad("missing shape");
        Shape shape;
        std::uint64_t count = 1;
        for (const auto& d : entry["shape"]) {
            if (!d.is_number_unsigned())
                bad(fmt::format("shape {} holds a non-integer or negative size",
                                entry["shape"].dump()));
            const auto size = d.get<std::uint64_t>();
            if (size != 0 && count > (std::uint64_t{1} << 40) / size)
                bad(fmt::format("shape {} is too large", entry["shape"].dump()));
            count *= size;
            shape.push_back(size);
        }
        if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() ||
            entry["data_offsets"].size() != 2 || !entry["data_offsets"][0].is_number_unsigned() ||
            !entry["data_offsets"][1].is_number_unsigned())
            bad("data_offsets must be two non-negative integers");
        const auto begin = entry["data_offsets"][0].get<std::uint64_t>();
        const auto end = entry["data_offsets"][1].get<std::uint64_t>();
        if (begin > end)
            bad(fmt::format("data_offsets [{}, {}] end before they begin", begin, end));
        if (end > data_size)
            bad(fmt::format("data_offsets [{}, {}] fall outside the {} data bytes", begin, end,
                            data_size));
        if (end - begin != count * itemsize(dt))
            bad(fmt::format("shape {} of {} needs {} bytes, data_offsets give {}",
                            entry["shape"].dump(), code, count * itemsize(dt), end - begin));
        ranges.push_back({begin, end, name});
        Tensor t = Tensor::empty(shape, dt);
        in.seekg(static_cast<std::streamoff>(8 + n + begin));
        dispatch(dt, [&]<class T>() {
            in.read(reinterpret_cast<char*>(t.mutable_xt<T>().data()),
                    static_cast<std::streamsize>(end - begin));
        });
        if (!in) io_fail(path, fmt::format("tensor '{}': read failed (file truncated?)", name));
        out.tensors.emplace_back(name, std::move(t));
    }
    // The data regions must not overlap (the format also requires them to cover the buffer).
    std::sort(ranges.begin(), ranges.end(),
              [](const Range& a, const Range& b) { return a.begin < b.begin; });
    std::uint64_t covered = 0;
    for (const auto& r : ranges) {
        if (r.begin < covered)
            io_fail(path, fmt::format("tensor '{}' overlaps the data of another tensor", r.name));
        if (r.begin > covered)
            io_fail(path, fmt::format("{} unused data bytes before tensor '{}'", r.begin - covered,
                                      r.name));
        covered = r.end;
    }
    if (covered != data_size)
        io_fail(
            path,
            fmt::format("{} data bytes after the last tensor (file size does not match the header)",
                        data_size - covered));
    // Keep the order of the file's data, as written.
    std::vector<std::pair<std::string, Tensor>> ordered;
    for (const auto& r : ranges)
        for (auto& p : out.tensors)
            if (p.first == r.name) ordered.push_back(std::move(p));
    out.tensors = std::move(ordered);
    return out;
}

}  // namespace tapegrad
