#include "workers/dark_matter/array_file.h"

#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "workers/common/safetensors_torch.h"

namespace loupe::dark_matter {

namespace {

absl::Status Bad(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// The value text of 'key' in a NumPy header dict ({'descr': '<f4', ...}).
std::string HeaderValue(const std::string& header, const std::string& key) {
  const std::string k = absl::StrCat("'", key, "':");
  size_t at = header.find(k);
  if (at == std::string::npos) return "";
  at += k.size();
  while (at < header.size() && header[at] == ' ') ++at;
  if (at >= header.size()) return "";
  if (header[at] == '(') return header.substr(at, header.find(')', at) - at + 1);
  size_t end = header.find_first_of(",}", at);
  return header.substr(at, end - at);
}

absl::StatusOr<torch::Tensor> ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Bad(path, "cannot be opened");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (all.size() < 10 || all.compare(0, 6, "\x93NUMPY") != 0) return Bad(path, "is not a .npy file");
  const int major = static_cast<unsigned char>(all[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(all[8]) | (static_cast<unsigned char>(all[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (all.size() < 12) return Bad(path, "truncated header");
    uint32_t len;
    std::memcpy(&len, all.data() + 8, 4);
    header_len = len;
    offset = 12;
  } else {
    return Bad(path, absl::StrCat("unsupported .npy version ", major));
  }
  if (offset + header_len > all.size()) return Bad(path, "truncated header");
  const std::string header = all.substr(offset, header_len);
  offset += header_len;
  std::string descr = std::string(absl::StripAsciiWhitespace(HeaderValue(header, "descr")));
  descr = std::string(absl::StripSuffix(absl::StripPrefix(descr, "'"), "'"));
  if (absl::StrContains(HeaderValue(header, "fortran_order"), "True")) {
    return Bad(path, "is in Fortran order; save it with np.ascontiguousarray");
  }
  torch::ScalarType type;
  size_t item = 0;
  if (descr == "<f4") type = torch::kFloat32, item = 4;
  else if (descr == "<f8") type = torch::kFloat64, item = 8;
  else if (descr == "<f2") type = torch::kFloat16, item = 2;
  else if (descr == "<i8") type = torch::kInt64, item = 8;
  else if (descr == "<i4") type = torch::kInt32, item = 4;
  else return Bad(path, absl::StrCat("dtype '", descr, "' is not supported (<f2, <f4, <f8, <i4, <i8 are)"));
  std::string shape_text = HeaderValue(header, "shape");
  shape_text = std::string(absl::StripSuffix(absl::StripPrefix(shape_text, "("), ")"));
  std::vector<int64_t> shape;
  int64_t count = 1;
  for (absl::string_view part : absl::StrSplit(shape_text, ',', absl::SkipWhitespace())) {
    int64_t v;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &v) || v < 0) return Bad(path, "bad shape in header");
    shape.push_back(v);
    count *= v;
  }
  if (all.size() - offset < static_cast<size_t>(count) * item) return Bad(path, "has fewer bytes than its shape needs");
  torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(type));
  std::memcpy(t.data_ptr(), all.data() + offset, static_cast<size_t>(count) * item);
  return t;
}

}  // namespace

absl::StatusOr<torch::Tensor> ReadArrayFile(const std::string& path, const std::string& preferred) {
  std::ifstream probe(path, std::ios::binary);
  if (!probe) return Bad(path, "cannot be opened");
  char magic[6] = {};
  probe.read(magic, 6);
  if (std::memcmp(magic, "\x93NUMPY", 6) == 0) return ReadNpy(path);
  absl::StatusOr<safetensors::TensorMap> map = safetensors::LoadTensors(path);
  if (!map.ok()) return Bad(path, absl::StrCat("neither .npy nor readable safetensors: ", map.status().message()));
  if (map->size() == 1) return map->begin()->second;
  auto it = map->find(preferred);
  if (it == map->end()) {
    return Bad(path, absl::StrCat("holds ", map->size(), " tensors and none named '", preferred, "'"));
  }
  return it->second;
}

}  // namespace loupe::dark_matter
