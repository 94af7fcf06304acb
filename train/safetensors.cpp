#include "train/safetensors.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <type_traits>

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

const char* dtype_code(DType dt) { return dt == float32 ? "F32" : dt == float64 ? "F64" : "I64"; }

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

// The dtypes of the format, in the order of the reference implementation's Dtype enum, and
// what tapegrad makes of each.
enum class Kind {
    f32,      // read as it is
    f64,      // read as it is
    small,    // a float of fewer bits: widened to float32, exactly
    integer,  // float64 when every value is exact there
    boolean,  // float64 0 and 1
    skipped,  // checked, then listed in TensorFile::skipped
};
struct FileDType {
    std::string_view code;
    unsigned bits;  // per element; F4 and F6 pack several elements in a byte
    Kind kind;
    bool is_signed = false;
};
constexpr std::array<FileDType, 22> file_dtypes{{
    {"BOOL", 8, Kind::boolean},       {"F4", 4, Kind::skipped},
    {"F6_E2M3", 6, Kind::skipped},    {"F6_E3M2", 6, Kind::skipped},
    {"U8", 8, Kind::integer},         {"I8", 8, Kind::integer, true},
    {"F8_E5M2", 8, Kind::small},      {"F8_E4M3", 8, Kind::small},
    {"F8_E8M0", 8, Kind::small},      {"F8_E4M3FNUZ", 8, Kind::small},
    {"F8_E5M2FNUZ", 8, Kind::small},  {"I16", 16, Kind::integer, true},
    {"U16", 16, Kind::integer},       {"F16", 16, Kind::small},
    {"BF16", 16, Kind::small},        {"I32", 32, Kind::integer, true},
    {"U32", 32, Kind::integer},       {"F32", 32, Kind::f32},
    {"C64", 64, Kind::skipped},       {"F64", 64, Kind::f64},
    {"I64", 64, Kind::integer, true}, {"U64", 64, Kind::integer},
}};

const FileDType* find_file_dtype(std::string_view code) {
    for (const auto& d : file_dtypes)
        if (d.code == code) return &d;
    return nullptr;
}

// IEEE binary16 to binary32. Every half is a float, so this is exact; a NaN keeps its sign
// and payload (shifted into the float's mantissa, quiet bit onto quiet bit).
float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    std::uint32_t bits = sign;
    if (exp == 0x1f) {
        bits |= 0x7f800000u | (man << 13);  // infinity, NaN
    } else if (exp != 0) {
        bits |= ((exp + 127 - 15) << 23) | (man << 13);
    } else if (man != 0) {
        // A subnormal half, man * 2^-24, is a normal float: move its leading 1 to the
        // implicit bit.
        const auto top = static_cast<std::uint32_t>(std::bit_width(man) - 1);  // 0..9
        bits |= ((top + 127 - 24) << 23) | ((man << (23 - top)) & 0x7fffffu);
    }
    return std::bit_cast<float>(bits);
}

// bfloat16 is the upper half of a float32.
float bfloat16_to_float(std::uint16_t b) {
    return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

// An 8-bit float with `man_bits` mantissa bits and exponent bias `bias`, with no infinity.
// FN kinds (F8_E4M3) have NaN only at S.1111.111; FNUZ kinds have no -0: 0x80 is their one NaN.
// Every value is a float32, and ldexp makes it exactly.
float fp8_to_float(std::uint8_t b, int man_bits, int bias, bool fnuz) {
    constexpr float nan = std::numeric_limits<float>::quiet_NaN();
    const unsigned exp = (b & 0x7fu) >> man_bits, man = b & ((1u << man_bits) - 1);
    if (fnuz ? b == 0x80 : (b & 0x7fu) == 0x7fu) return b & 0x80 ? -nan : nan;
    const float mag = exp == 0 ? std::ldexp(static_cast<float>(man), 1 - bias - man_bits)
                               : std::ldexp(static_cast<float>(man | (1u << man_bits)),
                                            static_cast<int>(exp) - bias - man_bits);
    return b & 0x80 ? -mag : mag;
}

// Widens one element of a float dtype of fewer than 32 bits, at p, to float32.
using Widen = float (*)(const unsigned char* p);

Widen widen_for(std::string_view code) {
    if (code == "F16")
        return
            [](const unsigned char* p) { return half_to_float(std::uint16_t(p[0] | p[1] << 8)); };
    if (code == "BF16")
        return [](const unsigned char* p) {
            return bfloat16_to_float(std::uint16_t(p[0] | p[1] << 8));
        };
    // E5M2 is the top byte of a half, infinity and NaN included.
    if (code == "F8_E5M2")
        return [](const unsigned char* p) { return half_to_float(std::uint16_t(p[0] << 8)); };
    if (code == "F8_E4M3")
        return [](const unsigned char* p) { return fp8_to_float(p[0], 3, 7, false); };
    if (code == "F8_E4M3FNUZ")
        return [](const unsigned char* p) { return fp8_to_float(p[0], 3, 8, true); };
    if (code == "F8_E5M2FNUZ")
        return [](const unsigned char* p) { return fp8_to_float(p[0], 2, 16, true); };
    // F8_E8M0: a power of two, 2^(p - 127), or NaN at 0xff (no sign, no zero).
    return [](const unsigned char* p) {
        return p[0] == 0xff ? std::numeric_limits<float>::quiet_NaN()
                            : std::ldexp(1.0f, p[0] - 127);
    };
}

template <class I>
std::optional<std::string> integers_to_int64(const unsigned char* raw, std::size_t count,
                                             std::int64_t* out) {
    for (std::size_t i = 0; i < count; ++i) {
        I v;
        std::memcpy(&v, raw + i * sizeof(I), sizeof(I));
        if constexpr (std::is_same_v<I, std::uint64_t>) {
            if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                return fmt::format("element {} is {}, beyond int64's largest value 2^63 - 1", i, v);
        }
        out[i] = static_cast<std::int64_t>(v);
    }
    return std::nullopt;
}

// BOOL and the integers as int64; the reason they cannot be, when one value does not fit.
std::optional<std::string> integers_to_int64(const FileDType& d, const unsigned char* raw,
                                             std::size_t count, std::int64_t* out) {
    if (d.kind == Kind::boolean) {
        for (std::size_t i = 0; i < count; ++i) {
            if (raw[i] > 1)
                return fmt::format("element {} is the byte {:#04x}, neither 0 (false) nor 1 (true)",
                                   i, raw[i]);
            out[i] = raw[i];
        }
        return std::nullopt;
    }
    switch (d.bits) {
        case 8:
            return d.is_signed ? integers_to_int64<std::int8_t>(raw, count, out)
                               : integers_to_int64<std::uint8_t>(raw, count, out);
        case 16:
            return d.is_signed ? integers_to_int64<std::int16_t>(raw, count, out)
                               : integers_to_int64<std::uint16_t>(raw, count, out);
        case 32:
            return d.is_signed ? integers_to_int64<std::int32_t>(raw, count, out)
                               : integers_to_int64<std::uint32_t>(raw, count, out);
        default:
            return d.is_signed ? integers_to_int64<std::int64_t>(raw, count, out)
                               : integers_to_int64<std::uint64_t>(raw, count, out);
    }
}

std::string skipped_reason(const FileDType& d) {
    if (d.code == "C64") return "complex numbers: tapegrad tensors hold real ones";
    return fmt::format("packed {}-bit floats: tapegrad reads floats of 8 bits and more", d.bits);
}

// One tensor's header entry, checked against the file.
struct Entry {
    std::string name;
    const FileDType* dtype;
    Shape shape;
    std::uint64_t count, begin, end;
};
}  // namespace

bool is_floating_dtype(std::string_view dtype) {
    const FileDType* d = find_file_dtype(dtype);
    return d && (d->kind == Kind::f32 || d->kind == Kind::f64 || d->kind == Kind::small);
}

const Tensor* TensorFile::find(const std::string& name) const {
    for (const auto& [n, t] : tensors)
        if (n == name) return &t;
    return nullptr;
}

std::string TensorFile::dtype(const std::string& name) const {
    if (const auto it = dtypes.find(name); it != dtypes.end()) return it->second;
    if (const Tensor* t = find(name)) return dtype_code(t->dtype());
    for (const auto& s : skipped)
        if (s.name == name) return s.dtype;
    return "";
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
            dispatch_any(t.dtype(), [&]<class T>() {
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

    // Every entry is checked before any data is read.
    TensorFile out;
    std::vector<Entry> entries;
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
        const FileDType* dtype = find_file_dtype(code);
        if (!dtype) {
            std::vector<std::string_view> known;
            for (const auto& d : file_dtypes) known.push_back(d.code);
            bad(fmt::format("dtype {} is not a safetensors dtype (those are {})", code,
                            fmt::join(known, ", ")));
        }
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
        // F4 and F6 pack elements across byte boundaries; a tensor must still fill whole bytes.
        if (count * dtype->bits % 8 != 0)
            bad(fmt::format("shape {} of {} is {} bits, not a whole number of bytes",
                            entry["shape"].dump(), code, count * dtype->bits));
        if (end - begin != count * dtype->bits / 8)
            bad(fmt::format("shape {} of {} needs {} bytes, data_offsets give {}",
                            entry["shape"].dump(), code, count * dtype->bits / 8, end - begin));
        entries.push_back({name, dtype, std::move(shape), count, begin, end});
    }
    // The data regions must not overlap (the format also requires them to cover the buffer).
    // Sorted by offset, they are also the order of the file's data, which the result keeps.
    std::sort(entries.begin(), entries.end(),
              [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
    std::uint64_t covered = 0;
    for (const auto& e : entries) {
        if (e.begin < covered)
            io_fail(path, fmt::format("tensor '{}' overlaps the data of another tensor", e.name));
        if (e.begin > covered)
            io_fail(path, fmt::format("{} unused data bytes before tensor '{}'", e.begin - covered,
                                      e.name));
        covered = e.end;
    }
    if (covered != data_size)
        io_fail(
            path,
            fmt::format("{} data bytes after the last tensor (file size does not match the header)",
                        data_size - covered));

    std::vector<unsigned char> raw;
    for (const auto& e : entries) {
        const FileDType& d = *e.dtype;
        out.dtypes[e.name] = std::string(d.code);
        if (d.kind == Kind::skipped) {
            out.skipped.push_back({e.name, std::string(d.code), e.shape, skipped_reason(d)});
            continue;
        }
        const auto bytes = static_cast<std::streamsize>(e.end - e.begin);
        auto read = [&](char* to) {
            if (bytes == 0) return;
            in.seekg(static_cast<std::streamoff>(8 + n + e.begin));
            in.read(to, bytes);
            if (!in)
                io_fail(path, fmt::format("tensor '{}': read failed (file truncated?)", e.name));
        };
        if (d.kind == Kind::f32 || d.kind == Kind::f64) {
            Tensor t = Tensor::empty(e.shape, d.kind == Kind::f32 ? float32 : float64);
            dispatch(t.dtype(),
                     [&]<class T>() { read(reinterpret_cast<char*>(t.mutable_xt<T>().data())); });
            out.tensors.emplace_back(e.name, std::move(t));
            continue;
        }
        raw.resize(static_cast<std::size_t>(bytes));
        read(reinterpret_cast<char*>(raw.data()));
        const std::size_t size = d.bits / 8;
        if (d.kind == Kind::small) {
            Tensor t = Tensor::empty(e.shape, float32);
            float* to = t.mutable_xt<float>().data();
            const Widen widen = widen_for(d.code);
            for (std::size_t i = 0; i < e.count; ++i) to[i] = widen(&raw[i * size]);
            out.tensors.emplace_back(e.name, std::move(t));
            continue;
        }
        Tensor t = Tensor::empty(e.shape, int64);
        if (auto why =
                integers_to_int64(d, raw.data(), e.count, t.mutable_xt<std::int64_t>().data()))
            out.skipped.push_back({e.name, std::string(d.code), e.shape, std::move(*why)});
        else out.tensors.emplace_back(e.name, std::move(t));
    }
    return out;
}

}  // namespace tapegrad
