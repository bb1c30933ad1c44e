#include "workers/sae/npy_format.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <optional>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace loupe::sae {
namespace {

absl::Status Bad(absl::string_view name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", what));
}

// The value text after 'key': in a header dict, up to the next top-level ','.
std::optional<std::string> DictValue(absl::string_view header, absl::string_view key) {
  for (char quote : {'\'', '"'}) {
    const std::string k = absl::StrCat(std::string(1, quote), key, std::string(1, quote));
    size_t at = header.find(k);
    if (at == absl::string_view::npos) continue;
    at = header.find(':', at + k.size());
    if (at == absl::string_view::npos) return std::nullopt;
    ++at;
    int depth = 0;
    size_t end = at;
    for (; end < header.size(); ++end) {
      const char c = header[end];
      if (c == '(' || c == '[') ++depth;
      if (c == ')' || c == ']') --depth;
      if ((c == ',' && depth == 0) || depth < 0 || c == '}') break;
    }
    return std::string(absl::StripAsciiWhitespace(header.substr(at, end - at)));
  }
  return std::nullopt;
}

uint16_t U16(const char* p) { return static_cast<uint16_t>(uint8_t(p[0]) | (uint8_t(p[1]) << 8)); }
uint32_t U32(const char* p) { return U16(p) | (uint32_t{U16(p + 2)} << 16); }

}  // namespace

absl::StatusOr<NpyHeader> ParseNpyHeader(absl::string_view bytes, absl::string_view name) {
  if (bytes.size() < 10 || bytes.substr(0, 6) != absl::string_view("\x93NUMPY", 6)) {
    return Bad(name, "not a .npy file (no \\x93NUMPY magic)");
  }
  const int major = uint8_t(bytes[6]);
  size_t header_len = 0, start = 0;
  if (major == 1) {
    header_len = U16(bytes.data() + 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return Bad(name, "truncated .npy header");
    header_len = U32(bytes.data() + 8);
    start = 12;
  } else {
    return Bad(name, absl::StrCat("unsupported .npy version ", major));
  }
  if (start + header_len > bytes.size()) return Bad(name, "truncated .npy header");
  const absl::string_view header = bytes.substr(start, header_len);
  NpyHeader out;
  out.data_offset = start + header_len;

  std::optional<std::string> descr = DictValue(header, "descr");
  std::optional<std::string> fortran = DictValue(header, "fortran_order");
  std::optional<std::string> shape = DictValue(header, "shape");
  if (!descr || !fortran || !shape) return Bad(name, absl::StrCat("malformed .npy header: ", header));
  std::string d = std::string(absl::StripSuffix(absl::StripPrefix(*descr, "'"), "'"));
  d = std::string(absl::StripSuffix(absl::StripPrefix(d, "\""), "\""));
  static const std::pair<const char*, torch::ScalarType> kTypes[] = {
      {"<f4", torch::kFloat}, {"<f2", torch::kHalf},  {"<f8", torch::kDouble},
      {"<i8", torch::kLong},  {"<i4", torch::kInt},   {"|u1", torch::kByte}};
  bool found = false;
  for (const auto& [n, t] : kTypes) {
    if (d == n) {
      out.dtype = t;
      found = true;
    }
  }
  if (!found) return Bad(name, absl::StrCat("unsupported .npy dtype '", d, "' (want <f4, <f2 or <f8)"));
  if (*fortran != "False") return Bad(name, "Fortran-ordered .npy arrays are not supported");
  absl::string_view dims = absl::StripSuffix(absl::StripPrefix(*shape, "("), ")");
  for (absl::string_view part : absl::StrSplit(dims, ',', absl::SkipWhitespace())) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &v) || v < 0) {
      return Bad(name, absl::StrCat("bad .npy shape ", *shape));
    }
    out.shape.push_back(v);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<MappedNpy>> MappedNpy::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size == 0) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": empty or unreadable file"));
  }
  void* map = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return absl::InternalError(absl::StrCat("cannot map ", path));
  std::unique_ptr<MappedNpy> npy(new MappedNpy());
  npy->mapping_ = map;
  npy->size_ = static_cast<size_t>(st.st_size);
  npy->base_ = static_cast<const char*>(map);
  absl::StatusOr<NpyHeader> h = ParseNpyHeader(absl::string_view(npy->base_, npy->size_), path);
  if (!h.ok()) return h.status();
  npy->header_ = *h;
  int64_t numel = 1;
  for (int64_t s : h->shape) numel *= s;
  const size_t need = h->data_offset + static_cast<size_t>(numel) * c10::elementSize(h->dtype);
  if (need > npy->size_) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": .npy data is ", npy->size_ - h->data_offset, " bytes, shape needs ", need - h->data_offset));
  }
  return npy;
}

MappedNpy::~MappedNpy() {
  if (mapping_ != nullptr) ::munmap(mapping_, size_);
}

absl::StatusOr<std::map<std::string, torch::Tensor>> ReadNpz(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string zip = ss.str();
  // Walk the central directory (its sizes are reliable even when local
  // headers defer them to a data descriptor).
  if (zip.size() < 22) return Bad(path, "not a zip archive");
  size_t eocd = std::string::npos;
  for (size_t i = zip.size() - 22 + 1; i-- > 0 && zip.size() - i < 22 + 65536;) {
    if (U32(zip.data() + i) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) return Bad(path, "not a zip archive (no end of central directory)");
  const uint16_t entries = U16(zip.data() + eocd + 10);
  size_t at = U32(zip.data() + eocd + 16);
  std::map<std::string, torch::Tensor> out;
  for (int e = 0; e < entries; ++e) {
    if (at + 46 > zip.size() || U32(zip.data() + at) != 0x02014b50) return Bad(path, "corrupt zip central directory");
    const char* c = zip.data() + at;
    const uint16_t method = U16(c + 10);
    const uint32_t comp_size = U32(c + 20), raw_size = U32(c + 24);
    const uint16_t name_len = U16(c + 28), extra_len = U16(c + 30), comment_len = U16(c + 32);
    const uint32_t local = U32(c + 42);
    std::string member(c + 46, name_len);
    at += 46 + name_len + extra_len + comment_len;
    if (comp_size == 0xFFFFFFFFu || raw_size == 0xFFFFFFFFu || local == 0xFFFFFFFFu) {
      return Bad(path, absl::StrCat("member ", member, " needs zip64, which is not supported"));
    }
    if (local + 30 > zip.size() || U32(zip.data() + local) != 0x04034b50) return Bad(path, "corrupt zip local header");
    const size_t data = local + 30 + U16(zip.data() + local + 26) + U16(zip.data() + local + 28);
    if (data + comp_size > zip.size()) return Bad(path, absl::StrCat("member ", member, " is truncated"));
    std::string raw;
    if (method == 0) {
      raw.assign(zip.data() + data, comp_size);
    } else if (method == 8) {
      raw.resize(raw_size);
      z_stream zs{};
      if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) return absl::InternalError("zlib init failed");
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(zip.data() + data));
      zs.avail_in = comp_size;
      zs.next_out = reinterpret_cast<Bytef*>(raw.data());
      zs.avail_out = raw_size;
      const int rc = inflate(&zs, Z_FINISH);
      inflateEnd(&zs);
      if (rc != Z_STREAM_END || zs.total_out != raw_size) {
        return Bad(path, absl::StrCat("member ", member, " does not inflate"));
      }
    } else {
      return Bad(path, absl::StrCat("member ", member, " uses zip method ", method, " (want stored or deflate)"));
    }
    absl::StatusOr<NpyHeader> h = ParseNpyHeader(raw, absl::StrCat(path, ":", member));
    if (!h.ok()) return h.status();
    int64_t numel = 1;
    for (int64_t s : h->shape) numel *= s;
    const size_t nbytes = static_cast<size_t>(numel) * c10::elementSize(h->dtype);
    if (h->data_offset + nbytes > raw.size()) return Bad(path, absl::StrCat("member ", member, " is truncated"));
    torch::Tensor t = torch::empty(h->shape, torch::TensorOptions().dtype(h->dtype));
    std::memcpy(t.data_ptr(), raw.data() + h->data_offset, nbytes);
    std::string key(absl::StripSuffix(member, ".npy"));
    out[key] = t;
  }
  return out;
}

std::string NpyBytes(const torch::Tensor& given) {
  torch::Tensor t = given.detach().cpu().contiguous();
  const char* descr = "<f4";
  switch (t.scalar_type()) {
    case torch::kHalf: descr = "<f2"; break;
    case torch::kDouble: descr = "<f8"; break;
    case torch::kLong: descr = "<i8"; break;
    case torch::kInt: descr = "<i4"; break;
    default: t = t.to(torch::kFloat);
  }
  std::string shape = "(";
  for (int64_t s : t.sizes()) absl::StrAppend(&shape, s, ",");
  if (t.dim() > 1) shape.pop_back();
  shape += ")";
  std::string header = absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': ", shape, ", }");
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xFF);
  out += static_cast<char>((header.size() >> 8) & 0xFF);
  out += header;
  out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  return out;
}

}  // namespace loupe::sae
