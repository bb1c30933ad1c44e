#include "workers/sae/saelens_format.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "workers/common/safetensors_torch.h"

namespace loupe::sae {
namespace {

// SAELens writes "float32"; older configs say "torch.float32".
std::optional<torch::ScalarType> TorchDtype(const std::string& name) {
  static const std::pair<const char*, torch::ScalarType> kNames[] = {
      {"float32", torch::kFloat},    {"torch.float32", torch::kFloat},
      {"float16", torch::kHalf},     {"torch.float16", torch::kHalf},
      {"bfloat16", torch::kBFloat16}, {"torch.bfloat16", torch::kBFloat16},
      {"float64", torch::kDouble},   {"torch.float64", torch::kDouble},
  };
  for (const auto& [n, t] : kNames) {
    if (name == n) return t;
  }
  return std::nullopt;
}

std::string ShapeText(c10::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) absl::StrAppend(&out, i ? ", " : "", s[i]);
  return out + "]";
}

// The four tensors with the shapes cfg implies.
std::vector<std::pair<const char*, std::vector<int64_t>>> Expected(const SaeLensConfig& cfg) {
  return {{"W_enc", {cfg.d_in, cfg.d_sae}},
          {"W_dec", {cfg.d_sae, cfg.d_in}},
          {"b_enc", {cfg.d_sae}},
          {"b_dec", {cfg.d_in}}};
}

}  // namespace

nlohmann::ordered_json ConfigToJson(const SaeLensConfig& cfg) {
  // Field order follows SAELens's SAEConfig.to_dict(): the dataclass fields
  // (the subclass's k last), then "architecture".
  nlohmann::ordered_json j;
  j["d_in"] = cfg.d_in;
  j["d_sae"] = cfg.d_sae;
  j["dtype"] = cfg.dtype;
  j["device"] = cfg.device;
  j["apply_b_dec_to_input"] = cfg.apply_b_dec_to_input;
  j["normalize_activations"] = cfg.normalize_activations;
  j["reshape_activations"] = cfg.reshape_activations;
  j["metadata"] = cfg.metadata;
  if (cfg.architecture == "topk" || cfg.k > 0) j["k"] = cfg.k;
  j["architecture"] = cfg.architecture;
  return j;
}

absl::StatusOr<SaeLensConfig> ConfigFromJson(const nlohmann::json& j) {
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("SAELens cfg.json: ", what));
  };
  if (!j.is_object()) return bad("not a JSON object");
  SaeLensConfig cfg;
  auto positive_int = [&](const char* key, int64_t* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end()) return bad(absl::StrCat("missing '", key, "'"));
    if (!it->is_number_integer() || it->get<int64_t>() < 1) {
      return bad(absl::StrCat("'", key, "' must be a positive integer, got ", it->dump()));
    }
    *out = it->get<int64_t>();
    return absl::OkStatus();
  };
  auto optional_string = [&](const char* key, std::string* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end()) return absl::OkStatus();
    if (!it->is_string()) return bad(absl::StrCat("'", key, "' must be a string, got ", it->dump()));
    *out = it->get<std::string>();
    return absl::OkStatus();
  };
  for (absl::Status s : {positive_int("d_in", &cfg.d_in), positive_int("d_sae", &cfg.d_sae),
                         optional_string("dtype", &cfg.dtype), optional_string("device", &cfg.device),
                         optional_string("normalize_activations", &cfg.normalize_activations),
                         optional_string("reshape_activations", &cfg.reshape_activations)}) {
    if (!s.ok()) return s;
  }
  auto arch = j.find("architecture");
  if (arch == j.end() || !arch->is_string()) return bad("missing string 'architecture'");
  cfg.architecture = arch->get<std::string>();
  if (!TorchDtype(cfg.dtype)) return bad(absl::StrCat("unsupported dtype '", cfg.dtype, "'"));
  if (auto it = j.find("apply_b_dec_to_input"); it != j.end()) {
    if (!it->is_boolean()) return bad("'apply_b_dec_to_input' must be true or false");
    cfg.apply_b_dec_to_input = it->get<bool>();
  }
  if (auto it = j.find("metadata"); it != j.end()) {
    if (!it->is_object()) return bad("'metadata' must be an object");
    cfg.metadata = *it;
  }
  if (auto it = j.find("k"); it != j.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > cfg.d_sae) {
      return bad(absl::StrCat("'k' must be an integer in [1, d_sae = ", cfg.d_sae, "], got ", it->dump()));
    }
    cfg.k = it->get<int64_t>();
  } else if (cfg.architecture == "topk") {
    return bad("architecture 'topk' needs 'k'");
  }
  return cfg;
}

std::string ConfigJsonText(const SaeLensConfig& cfg) { return ConfigToJson(cfg).dump(2) + "\n"; }

absl::Status WriteSaeWeights(const std::string& path, const SaeLensWeights& weights,
                             const SaeLensConfig& cfg) {
  if (cfg.dtype != "float32") {
    return absl::UnimplementedError(absl::StrCat("writing SAELens weights as ", cfg.dtype));
  }
  const torch::Tensor* tensors[] = {&weights.W_enc, &weights.W_dec, &weights.b_enc, &weights.b_dec};
  safetensors::TensorMap out;
  int i = 0;
  for (const auto& [name, shape] : Expected(cfg)) {
    const torch::Tensor& t = *tensors[i++];
    if (!t.defined() || t.sizes() != c10::IntArrayRef(shape)) {
      return absl::InvalidArgumentError(absl::StrCat("SAELens weights: ", name, " must be ", ShapeText(shape),
                                                     ", got ", t.defined() ? ShapeText(t.sizes()) : "none"));
    }
    out[name] = t.detach().to(torch::kCPU, torch::kFloat);
  }
  for (const auto& [name, t] : weights.extra) out[name] = t.detach().to(torch::kCPU);
  // "format": "pt" is what safetensors.torch.save_file records for PyTorch.
  return safetensors::SaveTensors(path, out, {{"format", "pt"}});
}

absl::Status WriteSaeLensDir(const std::string& dir, const SaeLensWeights& weights,
                             const SaeLensConfig& cfg) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  const std::filesystem::path d(dir);
  if (absl::Status s = WriteSaeWeights((d / kSaeWeightsFile).string(), weights, cfg); !s.ok()) return s;
  std::ofstream f(d / kSaeConfigFile, std::ios::binary | std::ios::trunc);
  f << ConfigJsonText(cfg);
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", (d / kSaeConfigFile).string()));
  return absl::OkStatus();
}

absl::StatusOr<SaeLensSae> ReadSaeLensDir(const std::string& dir) {
  const std::filesystem::path d(dir);
  std::ifstream f(d / kSaeConfigFile, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("no ", kSaeConfigFile, " in ", dir));
  std::stringstream text;
  text << f.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("SAELens cfg.json in ", dir, " is not valid JSON: ", e.what()));
  }
  absl::StatusOr<SaeLensConfig> cfg = ConfigFromJson(j);
  if (!cfg.ok()) return cfg.status();

  absl::StatusOr<safetensors::TensorMap> tensors = safetensors::LoadTensors((d / kSaeWeightsFile).string());
  if (!tensors.ok()) return tensors.status();
  SaeLensSae sae;
  sae.cfg = *std::move(cfg);
  torch::Tensor* slots[] = {&sae.weights.W_enc, &sae.weights.W_dec, &sae.weights.b_enc, &sae.weights.b_dec};
  const torch::ScalarType dtype = *TorchDtype(sae.cfg.dtype);
  int i = 0;
  for (const auto& [name, shape] : Expected(sae.cfg)) {
    auto it = tensors->find(name);
    if (it == tensors->end()) {
      return absl::InvalidArgumentError(absl::StrCat("SAELens weights in ", dir, " lack tensor '", name, "'"));
    }
    if (it->second.sizes() != c10::IntArrayRef(shape)) {
      return absl::InvalidArgumentError(absl::StrCat("SAELens weights in ", dir, ": ", name, " is ",
                                                     ShapeText(it->second.sizes()), " but cfg.json implies ",
                                                     ShapeText(shape)));
    }
    if (it->second.scalar_type() != dtype) {
      return absl::InvalidArgumentError(absl::StrCat("SAELens weights in ", dir, ": ", name, " is ",
                                                     c10::toString(it->second.scalar_type()), " but cfg.json says ",
                                                     sae.cfg.dtype));
    }
    *slots[i++] = it->second;
    tensors->erase(it);
  }
  sae.weights.extra = *std::move(tensors);
  return sae;
}

}  // namespace loupe::sae
