#include "workers/sae/sae_model.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "workers/sae/npy_format.h"
#include "workers/sae/saelens_format.h"

namespace loupe::sae {
namespace {

namespace fs = std::filesystem;

std::string ShapeText(c10::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) absl::StrAppend(&out, i ? ", " : "", s[i]);
  return out + "]";
}

torch::Tensor F32(const torch::Tensor& t) {
  return t.defined() ? t.detach().to(torch::kFloat).contiguous() : t;
}

absl::StatusOr<SaeModel> FromSaeLens(SaeLensSae s, const std::string& where) {
  SaeModel m;
  absl::StatusOr<SaeArchitecture> arch = ParseArchitecture(s.cfg.architecture);
  if (!arch.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", arch.status().message()));
  m.architecture = *arch;
  m.W_enc = F32(s.weights.W_enc);
  m.W_dec = F32(s.weights.W_dec);
  m.b_enc = F32(s.weights.b_enc);
  m.b_dec = F32(s.weights.b_dec);
  if (auto it = s.weights.extra.find("threshold"); it != s.weights.extra.end()) m.threshold = F32(it->second);
  // Some JumpReLU checkpoints store log_threshold instead.
  if (!m.threshold.defined()) {
    if (auto it = s.weights.extra.find("log_threshold"); it != s.weights.extra.end()) {
      m.threshold = F32(it->second).exp();
    }
  }
  m.k = s.cfg.k;
  m.apply_b_dec_to_input = s.cfg.apply_b_dec_to_input;
  // "expected_average_only_in" is a dataset-wide scale SAELens folds into
  // the weights when it saves for inference; "layer_norm" works per row.
  if (s.cfg.normalize_activations == "layer_norm") {
    m.input_norm = InputNorm::kLayerNorm;
  } else if (s.cfg.normalize_activations == "constant_norm_rescale") {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": normalize_activations \"constant_norm_rescale\" is not supported (supported: none, "
               "expected_average_only_in with the scale folded in, layer_norm)"));
  }
  m.metadata = s.cfg.metadata;
  if (absl::Status st = m.Validate(); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", st.message()));
  }
  return m;
}

absl::StatusOr<SaeModel> LoadGemmaScopeNpz(const std::string& path) {
  absl::StatusOr<std::map<std::string, torch::Tensor>> arrays = ReadNpz(path);
  if (!arrays.ok()) return arrays.status();
  SaeModel m;
  m.architecture = SaeArchitecture::kJumpRelu;
  for (auto [name, slot] : {std::pair<const char*, torch::Tensor*>{"W_enc", &m.W_enc},
                            {"W_dec", &m.W_dec}, {"b_enc", &m.b_enc}, {"b_dec", &m.b_dec},
                            {"threshold", &m.threshold}}) {
    auto it = arrays->find(name);
    if (it == arrays->end()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": Gemma Scope params.npz lacks array '", name,
                                                     "' (want W_enc, W_dec, b_enc, b_dec, threshold)"));
    }
    *slot = F32(it->second);
  }
  // Gemma Scope encodes x W_enc + b_enc: no b_dec subtracted from the input.
  m.apply_b_dec_to_input = false;
  m.metadata = {{"source_format", "gemma_scope_npz"}};
  if (absl::Status st = m.Validate(); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", st.message()));
  }
  return m;
}

absl::StatusOr<SaeModel> LoadSafetensorsWithConfig(const std::string& weights, const std::string& config) {
  std::ifstream f(config, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("no cfg.json at ", config, " for ", weights));
  std::stringstream text;
  text << f.rdbuf();
  // ReadSaeLensDir wants a directory: stage both files side by side.
  const fs::path tmp = fs::temp_directory_path() /
                       absl::StrCat("loupe-sae-", std::hash<std::string>{}(weights + config), "-", ::getpid());
  std::error_code ec;
  fs::create_directories(tmp, ec);
  fs::create_symlink(fs::absolute(weights), tmp / kSaeWeightsFile, ec);
  if (ec) fs::copy_file(weights, tmp / kSaeWeightsFile, fs::copy_options::overwrite_existing, ec);
  std::ofstream(tmp / kSaeConfigFile, std::ios::binary) << text.str();
  absl::StatusOr<SaeLensSae> s = ReadSaeLensDir(tmp.string());
  fs::remove_all(tmp, ec);
  if (!s.ok()) return s.status();
  return FromSaeLens(*std::move(s), weights);
}

bool HasNpzMagic(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {};
  f.read(magic, 4);
  return f && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

}  // namespace

std::string ArchitectureName(SaeArchitecture a) {
  switch (a) {
    case SaeArchitecture::kRelu: return "relu";
    case SaeArchitecture::kTopK: return "topk";
    case SaeArchitecture::kBatchTopK: return "batchtopk";
    case SaeArchitecture::kJumpRelu: return "jumprelu";
  }
  return "?";
}

absl::StatusOr<SaeArchitecture> ParseArchitecture(absl::string_view name) {
  if (name == "relu" || name == "standard") return SaeArchitecture::kRelu;
  if (name == "topk") return SaeArchitecture::kTopK;
  if (name == "batchtopk") return SaeArchitecture::kBatchTopK;
  if (name == "jumprelu") return SaeArchitecture::kJumpRelu;
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported SAE architecture '", name, "' (supported: relu or standard, topk, batchtopk, jumprelu)"));
}

absl::Status SaeModel::Validate() const {
  auto bad = [](auto... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  if (!W_dec.defined() || W_dec.dim() != 2) return bad("W_dec must be [d_sae, d_in]");
  const int64_t s = W_dec.size(0), d = W_dec.size(1);
  auto expect = [&](const char* name, const torch::Tensor& t, std::vector<int64_t> want) -> absl::Status {
    if (!t.defined()) return bad("missing ", name);
    if (t.sizes() != c10::IntArrayRef(want)) {
      return bad(name, " must be ", ShapeText(want), " for d_in ", d, ", d_sae ", s, "; got ", ShapeText(t.sizes()));
    }
    return absl::OkStatus();
  };
  for (absl::Status st : {expect("W_enc", W_enc, {d, s}), expect("b_enc", b_enc, {s}), expect("b_dec", b_dec, {d})}) {
    if (!st.ok()) return st;
  }
  switch (architecture) {
    case SaeArchitecture::kTopK:
      if (k < 1 || k > s) return bad("topk needs k in [1, d_sae = ", s, "], got ", k);
      break;
    case SaeArchitecture::kBatchTopK:
    case SaeArchitecture::kJumpRelu:
      if (absl::Status st = expect("threshold", threshold, {s}); !st.ok()) {
        return bad(ArchitectureName(architecture), " needs a threshold tensor: ", st.message());
      }
      break;
    case SaeArchitecture::kRelu:
      break;
  }
  return absl::OkStatus();
}

NormalizedRows LayerNormRows(const torch::Tensor& x) {
  NormalizedRows r;
  r.mean = x.mean(1, true);
  const torch::Tensor centred = x - r.mean;
  r.std = centred.std(1, /*unbiased=*/true, /*keepdim=*/true);
  r.x = centred / (r.std + 1e-5);
  return r;
}

torch::Tensor SaeModel::Normalize(const torch::Tensor& x) const {
  return input_norm == InputNorm::kLayerNorm ? LayerNormRows(x).x : x;
}

torch::Tensor SaeModel::PreActivations(const torch::Tensor& x_given) const {
  const torch::Tensor x = Normalize(x_given);
  const torch::Tensor in = apply_b_dec_to_input ? x - b_dec : x;
  return torch::addmm(b_enc, in, W_enc);
}

torch::Tensor SaeModel::Encode(const torch::Tensor& x) const {
  torch::Tensor pre = PreActivations(x);
  switch (architecture) {
    case SaeArchitecture::kRelu:
      return torch::relu(pre);
    case SaeArchitecture::kTopK: {
      auto [values, indices] = torch::relu(pre).topk(k, 1, true, false);
      return torch::zeros_like(pre).scatter(1, indices, values);
    }
    case SaeArchitecture::kBatchTopK:
      return torch::relu(pre) * (pre > threshold).to(pre.scalar_type());
    case SaeArchitecture::kJumpRelu:
      return pre * (pre > threshold).to(pre.scalar_type());
  }
  return pre;
}

torch::Tensor SaeModel::Decode(const torch::Tensor& z) const { return torch::addmm(b_dec, z, W_dec); }

torch::Tensor SaeModel::Denormalize(const torch::Tensor& out, const torch::Tensor& x) const {
  if (input_norm == InputNorm::kNone) return out;
  const NormalizedRows n = LayerNormRows(x);
  return out * n.std + n.mean;
}

SaeModel SaeModel::To(torch::Device device) const {
  SaeModel m = *this;
  auto move = [&](const torch::Tensor& t) {
    return t.defined() ? t.detach().to(device, torch::kFloat).contiguous() : t;
  };
  m.W_enc = move(W_enc);
  m.W_dec = move(W_dec);
  m.b_enc = move(b_enc);
  m.b_dec = move(b_dec);
  m.threshold = move(threshold);
  return m;
}

absl::StatusOr<SaeModel> LoadSae(const std::string& path, const std::string& config_path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return absl::NotFoundError(absl::StrCat("no SAE at ", path));
  if (fs::is_directory(path, ec)) {
    const fs::path d(path);
    if (fs::exists(d / kSaeConfigFile)) {
      absl::StatusOr<SaeLensSae> s = ReadSaeLensDir(path);
      if (!s.ok()) return s.status();
      return FromSaeLens(*std::move(s), path);
    }
    if (fs::exists(d / "params.npz")) return LoadGemmaScopeNpz((d / "params.npz").string());
    return absl::InvalidArgumentError(absl::StrCat(
        path, " holds neither a SAELens SAE (cfg.json + sae_weights.safetensors) nor a Gemma Scope params.npz"));
  }
  if (HasNpzMagic(path)) return LoadGemmaScopeNpz(path);
  std::string config = config_path;
  if (config.empty()) config = (fs::path(path).parent_path() / kSaeConfigFile).string();
  return LoadSafetensorsWithConfig(path, config);
}

absl::Status SaveSaeLensDir(const std::string& dir, const SaeModel& given) {
  if (absl::Status st = given.Validate(); !st.ok()) return st;
  const SaeModel m = given.To(torch::kCPU);
  SaeLensConfig cfg;
  cfg.d_in = m.d_in();
  cfg.d_sae = m.d_sae();
  cfg.apply_b_dec_to_input = m.apply_b_dec_to_input;
  if (m.input_norm == InputNorm::kLayerNorm) cfg.normalize_activations = "layer_norm";
  cfg.metadata = m.metadata.is_object() ? m.metadata : nlohmann::json::object();
  SaeLensWeights w{m.W_enc, m.W_dec, m.b_enc, m.b_dec, {}};
  switch (m.architecture) {
    case SaeArchitecture::kRelu:
      cfg.architecture = "standard";
      break;
    case SaeArchitecture::kTopK:
      cfg.architecture = "topk";
      cfg.k = m.k;
      break;
    case SaeArchitecture::kBatchTopK:
      // SAELens saves BatchTopK for inference as JumpReLU; ReLU(pre) masked by
      // pre > threshold equals JumpReLU for a positive threshold.
      cfg.architecture = "jumprelu";
      cfg.metadata["trained_architecture"] = "batchtopk";
      cfg.metadata["batchtopk_k"] = m.k;
      w.extra["threshold"] = m.threshold.clamp_min(0);
      break;
    case SaeArchitecture::kJumpRelu:
      cfg.architecture = "jumprelu";
      w.extra["threshold"] = m.threshold;
      break;
  }
  return WriteSaeLensDir(dir, w, cfg);
}

}  // namespace loupe::sae
