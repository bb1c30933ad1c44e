#include "workers/common/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

// The format is little-endian; so is every platform Loupe builds for. A
// big-endian port would need byte swaps in both directions.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors I/O assumes a little-endian host");

namespace loupe::safetensors {
namespace {

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::kBool, "BOOL", 1},      {DType::kU8, "U8", 1},
    {DType::kI8, "I8", 1},          {DType::kU16, "U16", 2},
    {DType::kI16, "I16", 2},        {DType::kU32, "U32", 4},
    {DType::kI32, "I32", 4},        {DType::kU64, "U64", 8},
    {DType::kI64, "I64", 8},        {DType::kF8E4M3, "F8_E4M3", 1},
    {DType::kF8E5M2, "F8_E5M2", 1}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2},      {DType::kF32, "F32", 4},
    {DType::kF64, "F64", 8},
};

constexpr char kMetadataKey[] = "__metadata__";

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// numel * element size, refusing negative dims and overflow.
absl::StatusOr<uint64_t> ByteSize(const std::vector<int64_t>& shape, DType dtype) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return absl::InvalidArgumentError(absl::StrCat("negative dimension in shape ", ShapeText(shape)));
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n) || n > (uint64_t{1} << 62)) {
      return absl::InvalidArgumentError(absl::StrCat("shape ", ShapeText(shape), " is too large"));
    }
  }
  uint64_t bytes;
  if (__builtin_mul_overflow(n, static_cast<uint64_t>(DTypeSize(dtype)), &bytes)) {
    return absl::InvalidArgumentError(absl::StrCat("shape ", ShapeText(shape), " is too large"));
  }
  return bytes;
}

// A tensor placed in the data section, in write order.
struct Placed {
  const std::string* name;
  const TensorData* data;
  uint64_t begin;
  uint64_t end;
};

// Validates `tensors`, lays them out, and returns the 8-byte length plus the
// padded JSON header; `placed` receives the write order.
absl::StatusOr<std::string> BuildHeader(const TensorDataMap& tensors,
                                        const Metadata& metadata,
                                        std::vector<Placed>* placed) {
  placed->clear();
  for (const auto& [name, t] : tensors) {
    auto err = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("safetensors: tensor '", name, "': ", what));
    };
    if (name.empty()) return absl::InvalidArgumentError("safetensors: empty tensor name");
    if (name == kMetadataKey) return err("the name is reserved for metadata");
    absl::StatusOr<uint64_t> want = ByteSize(t.shape, t.dtype);
    if (!want.ok()) return err(want.status().message());
    if (*want != t.bytes.size()) {
      return err(absl::StrCat("shape ", ShapeText(t.shape), " of ", DTypeName(t.dtype), " needs ",
                              *want, " bytes but ", t.bytes.size(), " were given"));
    }
    placed->push_back({&name, &t, 0, 0});
  }
  // Largest elements first keeps every tensor aligned to its element size
  // once the header is padded to 8 bytes.
  std::stable_sort(placed->begin(), placed->end(), [](const Placed& a, const Placed& b) {
    return DTypeSize(a.data->dtype) > DTypeSize(b.data->dtype);
  });
  uint64_t offset = 0;
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header[std::string(kMetadataKey)] = std::move(m);
  }
  for (Placed& p : *placed) {
    p.begin = offset;
    p.end = offset + p.data->bytes.size();
    offset = p.end;
    header[*p.name] = {{"dtype", std::string(DTypeName(p.data->dtype))},
                       {"shape", p.data->shape},
                       {"data_offsets", {p.begin, p.end}}};
  }
  std::string json;
  try {
    json = header.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::strict);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors: cannot encode header: ", e.what()));
  }
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);
  out += json;
  return out;
}

}  // namespace

absl::string_view DTypeName(DType dtype) {
  for (const auto& e : kDTypes) {
    if (e.dtype == dtype) return e.name;
  }
  return "?";
}

std::optional<DType> DTypeFromName(absl::string_view name) {
  for (const auto& e : kDTypes) {
    if (name == e.name) return e.dtype;
  }
  return std::nullopt;
}

size_t DTypeSize(DType dtype) {
  for (const auto& e : kDTypes) {
    if (e.dtype == dtype) return e.size;
  }
  return 0;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<std::string> Serialize(const TensorDataMap& tensors, const Metadata& metadata) {
  std::vector<Placed> placed;
  absl::StatusOr<std::string> out = BuildHeader(tensors, metadata, &placed);
  if (!out.ok()) return out.status();
  size_t total = out->size();
  for (const Placed& p : placed) total += p.data->bytes.size();
  out->reserve(total);
  for (const Placed& p : placed) out->append(p.data->bytes.data(), p.data->bytes.size());
  return out;
}

absl::Status WriteFile(const std::string& path, const TensorDataMap& tensors,
                       const Metadata& metadata) {
  std::vector<Placed> placed;
  absl::StatusOr<std::string> header = BuildHeader(tensors, metadata, &placed);
  if (!header.ok()) return header.status();
  const std::string tmp = absl::StrCat(path, ".tmp");
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return absl::InternalError(absl::StrCat("safetensors: cannot create ", tmp, ": ", std::strerror(errno)));
  }
  bool ok = std::fwrite(header->data(), 1, header->size(), f) == header->size();
  for (const Placed& p : placed) {
    if (!ok) break;
    const absl::string_view b = p.data->bytes;
    ok = b.empty() || std::fwrite(b.data(), 1, b.size(), f) == b.size();
  }
  const int saved_errno = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = ok ? errno : saved_errno;
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("safetensors: cannot write ", path, ": ", std::strerror(e)));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Reading

File::~File() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
}

absl::StatusOr<std::shared_ptr<const File>> File::Open(const std::string& path) {
  std::shared_ptr<File> file(new File());
  file->name_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    std::string msg = absl::StrCat("safetensors file '", path, "': cannot open: ", std::strerror(e));
    return e == ENOENT ? absl::NotFoundError(msg) : absl::InternalError(msg);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("safetensors file '", path, "': cannot stat: ", std::strerror(e)));
  }
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ > 0) {
    // MAP_PRIVATE + PROT_WRITE: tensors that share the mapping may be written
    // by LibTorch code; such writes stay private to this process and never
    // reach the file.
    void* m = ::mmap(nullptr, file->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat("safetensors file '", path, "': cannot mmap: ", std::strerror(e)));
    }
    file->mapping_ = m;
    file->mapping_size_ = file->size_;
    file->bytes_ = static_cast<const char*>(m);
  }
  ::close(fd);  // the mapping keeps the file's pages reachable
  if (absl::Status s = file->Parse(); !s.ok()) return s;
  return std::shared_ptr<const File>(std::move(file));
}

absl::StatusOr<std::shared_ptr<const File>> File::FromBytes(std::string bytes, std::string name) {
  std::shared_ptr<File> file(new File());
  file->name_ = std::move(name);
  file->owned_ = std::move(bytes);
  file->bytes_ = file->owned_.data();
  file->size_ = file->owned_.size();
  if (absl::Status s = file->Parse(); !s.ok()) return s;
  return std::shared_ptr<const File>(std::move(file));
}

absl::Status File::Parse() {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors file '", name_, "': ", what));
  };
  if (size_ < 8) {
    return bad(absl::StrCat("file is ", size_, " bytes, too short for the 8-byte header length"));
  }
  uint64_t n;
  std::memcpy(&n, bytes_, 8);
  if (n > kMaxHeaderBytes) {
    return bad(absl::StrCat("header length ", n, " exceeds the limit of ", kMaxHeaderBytes, " bytes"));
  }
  if (n > size_ - 8) {
    return bad(absl::StrCat("header length ", n, " exceeds the ", size_ - 8,
                            " bytes that follow it (truncated file?)"));
  }
  data_start_ = 8 + n;
  const uint64_t data_size = size_ - data_start_;
  absl::string_view text(bytes_ + 8, n);
  if (text.empty() || text.front() != '{') return bad("header is not a JSON object");

  // nlohmann keeps the last of duplicate keys silently; a parse callback sees
  // each top-level key so a file naming a tensor twice is refused.
  std::set<std::string> seen;
  std::string duplicate;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(
        text.begin(), text.end(),
        [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
          if (depth == 1 && event == nlohmann::json::parse_event_t::key &&
              !seen.insert(parsed.get<std::string>()).second && duplicate.empty()) {
            duplicate = parsed.get<std::string>();
          }
          return true;
        });
  } catch (const nlohmann::json::exception& e) {
    return bad(absl::StrCat("header is not valid JSON: ", e.what()));
  }
  if (!header.is_object()) return bad("header is not a JSON object");
  if (!duplicate.empty()) return bad(absl::StrCat("header names '", duplicate, "' twice"));

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& v = it.value();
    if (key == kMetadataKey) {
      if (!v.is_object()) return bad("'__metadata__' is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          return bad(absl::StrCat("'__metadata__' entry '", m.key(), "' is not a string"));
        }
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto tbad = [&](absl::string_view what) { return bad(absl::StrCat("tensor '", key, "': ", what)); };
    if (key.empty()) return bad("a tensor has an empty name");
    if (!v.is_object()) return tbad("entry is not an object");
    TensorInfo info;

    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) return tbad("missing string 'dtype'");
    std::optional<DType> dtype = DTypeFromName(dt->get<std::string>());
    if (!dtype) return tbad(absl::StrCat("unknown dtype '", dt->get<std::string>(), "'"));
    info.dtype = *dtype;

    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) return tbad("missing array 'shape'");
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t{1} << 62)) {
        return tbad(absl::StrCat("shape ", sh->dump(), " must list non-negative integers"));
      }
      info.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
    }

    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned()) {
      return tbad("'data_offsets' must be [begin, end] with non-negative integers");
    }
    info.begin = (*off)[0].get<uint64_t>();
    info.end = (*off)[1].get<uint64_t>();
    if (info.begin > info.end) {
      return tbad(absl::StrCat("data_offsets [", info.begin, ", ", info.end, "] end before they begin"));
    }
    if (info.end > data_size) {
      return tbad(absl::StrCat("data_offsets [", info.begin, ", ", info.end, "] exceed the data section (",
                               data_size, " bytes; truncated file?)"));
    }
    absl::StatusOr<uint64_t> want = ByteSize(info.shape, info.dtype);
    if (!want.ok()) return tbad(want.status().message());
    if (*want != info.nbytes()) {
      return tbad(absl::StrCat("shape ", ShapeText(info.shape), " of ", DTypeName(info.dtype), " needs ",
                               *want, " bytes but data_offsets [", info.begin, ", ", info.end, "] hold ",
                               info.nbytes()));
    }
    tensors_.emplace(key, std::move(info));
  }

  // Tensors must tile the data section exactly: no overlap, no gap, no
  // trailing bytes (as the reference implementation requires).
  std::vector<std::pair<const std::string*, const TensorInfo*>> order;
  for (const auto& [name, info] : tensors_) order.emplace_back(&name, &info);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second->begin, a.second->end) < std::tie(b.second->begin, b.second->end);
  });
  uint64_t expected = 0;
  const std::string* prev = nullptr;
  for (const auto& [name, info] : order) {
    if (info->begin < expected) {
      return bad(absl::StrCat("tensors '", *prev, "' and '", *name, "' overlap (", *name,
                              " starts at byte ", info->begin, ", before ", *prev, " ends at ", expected, ")"));
    }
    if (info->begin > expected) {
      return bad(absl::StrCat("tensor '", *name, "' starts at byte ", info->begin, " but ",
                              prev ? absl::StrCat("'", *prev, "' ends") : std::string("the data section starts"),
                              " at ", expected, " (gap in the data section)"));
    }
    expected = info->end;
    prev = name;
  }
  if (expected != data_size) {
    return bad(absl::StrCat("the data section is ", data_size, " bytes but its tensors cover ", expected));
  }
  return absl::OkStatus();
}

std::vector<std::string> File::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [name, info] : tensors_) out.push_back(name);
  return out;
}

const TensorInfo* File::Find(absl::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

absl::StatusOr<absl::string_view> File::Bytes(absl::string_view name) const {
  const TensorInfo* info = Find(name);
  if (info == nullptr) {
    return absl::NotFoundError(absl::StrCat("safetensors file '", name_, "' has no tensor '", name, "'"));
  }
  return absl::string_view(bytes_ + data_start_ + info->begin, info->nbytes());
}

}  // namespace loupe::safetensors
