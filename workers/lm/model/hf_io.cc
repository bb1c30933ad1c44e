#include "workers/lm/model/hf_io.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "workers/common/safetensors.h"
#include "workers/common/safetensors_torch.h"
#include "workers/lm/model/gpt2.h"
#include "workers/lm/model/llama.h"

namespace loupe::lm {
namespace {

namespace fs = std::filesystem;
namespace st = loupe::safetensors;
using json = nlohmann::json;

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

std::string ShapeString(c10::IntArrayRef shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

absl::StatusOr<json> ReadJson(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path.string(), " is not valid JSON"));
  return j;
}

absl::Status WriteText(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp.string(), ": ", ec.message()));
  return absl::OkStatus();
}

std::optional<torch::ScalarType> DtypeFromName(const std::string& name) {
  if (name == "float32") return torch::kFloat;
  if (name == "float16") return torch::kHalf;
  if (name == "bfloat16") return torch::kBFloat16;
  return std::nullopt;
}

// Model without initialisation: the loader fills every parameter.
absl::StatusOr<std::shared_ptr<CausalLM>> Build(const ModelConfig& config, torch::Device device,
                                                torch::ScalarType dtype) {
  if (absl::Status s = ValidateConfig(config); !s.ok()) return s;
  if (dtype != torch::kFloat && dtype != torch::kHalf && dtype != torch::kBFloat16 && dtype != torch::kDouble) {
    return absl::InvalidArgumentError(absl::StrCat("model dtype must be a float type, got ", c10::toString(dtype)));
  }
  const auto opts = torch::TensorOptions().dtype(dtype).device(device);
  std::shared_ptr<CausalLM> m;
  if (config.architecture == Architecture::kGpt2) {
    m = std::make_shared<Gpt2LM>(config, opts);
  } else {
    m = std::make_shared<LlamaLM>(config, opts);
  }
  m->eval();
  return m;
}

// Where each tensor of a checkpoint lives.
struct Checkpoint {
  std::vector<std::shared_ptr<const st::File>> files;
  std::map<std::string, std::shared_ptr<const st::File>> by_name;
};

absl::StatusOr<Checkpoint> OpenCheckpoint(const fs::path& dir) {
  Checkpoint ck;
  std::vector<std::string> names;
  std::optional<json> weight_map;
  if (fs::exists(dir / kSingleFile)) {
    names.push_back(kSingleFile);
  } else if (fs::exists(dir / kIndexFile)) {
    absl::StatusOr<json> index = ReadJson(dir / kIndexFile);
    if (!index.ok()) return index.status();
    if (!index->contains("weight_map") || !(*index)["weight_map"].is_object()) {
      return absl::InvalidArgumentError(absl::StrCat((dir / kIndexFile).string(), " lacks a 'weight_map' object"));
    }
    weight_map = (*index)["weight_map"];
    std::set<std::string> unique;
    for (const auto& [tensor, file] : weight_map->items()) {
      if (!file.is_string()) {
        return absl::InvalidArgumentError(absl::StrCat((dir / kIndexFile).string(), ": weight_map entry '", tensor,
                                                       "' is not a file name"));
      }
      unique.insert(file.get<std::string>());
    }
    names.assign(unique.begin(), unique.end());
  } else {
    return absl::NotFoundError(absl::StrCat("no ", kSingleFile, " or ", kIndexFile, " in ", dir.string(),
                                            " (PyTorch .bin checkpoints are not supported: save with "
                                            "safe_serialization=True)"));
  }
  for (const std::string& name : names) {
    absl::StatusOr<std::shared_ptr<const st::File>> f = st::File::Open((dir / name).string());
    if (!f.ok()) return f.status();
    ck.files.push_back(*f);
    for (const auto& [tensor, info] : (*f)->tensors()) ck.by_name[tensor] = *f;
  }
  if (weight_map.has_value()) {
    for (const auto& [tensor, file] : weight_map->items()) {
      auto it = ck.by_name.find(tensor);
      if (it == ck.by_name.end() || fs::path(it->second->name()).filename() != file.get<std::string>()) {
        return absl::DataLossError(absl::StrCat((dir / kIndexFile).string(), " maps '", tensor, "' to ",
                                                file.get<std::string>(), ", which does not contain it"));
      }
    }
  }
  return ck;
}

}  // namespace

absl::StatusOr<std::string> TorchDtypeName(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat: return std::string("float32");
    case torch::kHalf: return std::string("float16");
    case torch::kBFloat16: return std::string("bfloat16");
    default:
      return absl::InvalidArgumentError(absl::StrCat("Hugging Face checkpoints are saved as float32, float16 or "
                                                     "bfloat16, not ", c10::toString(dtype)));
  }
}

absl::StatusOr<std::shared_ptr<CausalLM>> CreateModel(const ModelConfig& config, const CreateOptions& options) {
  absl::StatusOr<std::shared_ptr<CausalLM>> m = Build(config, options.device, options.dtype);
  if (!m.ok()) return m.status();
  (*m)->InitWeights(options.seed);
  return m;
}

absl::StatusOr<LoadedModel> LoadHfModel(const std::string& dir_name, const LoadOptions& options) {
  const fs::path dir(dir_name);
  LoadedModel out;
  absl::StatusOr<ModelConfig> config = ReadConfigFile((dir / "config.json").string(), &out.warnings);
  if (!config.ok()) return config.status();
  torch::ScalarType dtype = torch::kFloat;
  if (options.dtype.has_value()) {
    dtype = *options.dtype;
  } else {
    // Newer transformers write "dtype" where older ones wrote "torch_dtype".
    for (const char* key : {"torch_dtype", "dtype"}) {
      if (config->hf.contains(key) && config->hf[key].is_string()) {
        dtype = DtypeFromName(config->hf[key].get<std::string>()).value_or(torch::kFloat);
        break;
      }
    }
  }
  absl::StatusOr<Checkpoint> ck = OpenCheckpoint(dir);
  if (!ck.ok()) return ck.status();
  absl::StatusOr<std::shared_ptr<CausalLM>> model = Build(*config, options.device, dtype);
  if (!model.ok()) return model.status();

  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (const auto& item : (*model)->named_parameters()) {
    const std::vector<std::string> candidates = (*model)->CheckpointNames(item.key());
    auto found = ck->by_name.end();
    for (const std::string& c : candidates) {
      found = ck->by_name.find(c);
      if (found != ck->by_name.end()) break;
    }
    if (found == ck->by_name.end()) {
      return absl::NotFoundError(absl::StrCat(dir_name, ": checkpoint lacks tensor '", item.key(), "'",
                                              candidates.size() > 1
                                                  ? absl::StrCat(" (also tried '",
                                                                 absl::StrJoin(candidates.begin() + 1,
                                                                               candidates.end(), "', '"),
                                                                 "')")
                                                  : "",
                                              " needed by model_type ", config->model_type));
    }
    const std::string& name = found->first;
    const st::TensorInfo* info = found->second->Find(name);
    torch::Tensor param = item.value();
    if (c10::IntArrayRef(info->shape) != param.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' in ", found->second->name(), " has shape ",
                                                     ShapeString(info->shape), ", expected ",
                                                     ShapeString(param.sizes()), " (from config.json)"));
    }
    if (info->dtype != st::DType::kF32 && info->dtype != st::DType::kF16 && info->dtype != st::DType::kBF16 &&
        info->dtype != st::DType::kF64) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' in ", found->second->name(), " is ",
                                                     st::DTypeName(info->dtype), "; expected F32, F16 or BF16"));
    }
    // A view of the mapping, copied once into the parameter (converting the
    // dtype and moving to the device in the same step).
    absl::StatusOr<torch::Tensor> t = st::LoadTensor(found->second, name, st::LoadMode::kShare);
    if (!t.ok()) return t.status();
    param.copy_(*t);
    used.insert(name);
  }

  std::vector<std::string> unexpected;
  for (const auto& [name, file] : ck->by_name) {
    if (used.count(name) == 0 && !(*model)->IsIgnoredCheckpointTensor(name)) unexpected.push_back(name);
  }
  if (!unexpected.empty()) {
    const std::string list = absl::StrJoin(unexpected.begin(),
                                           unexpected.begin() + std::min<size_t>(unexpected.size(), 8), ", ");
    const std::string more = unexpected.size() > 8 ? absl::StrCat(" and ", unexpected.size() - 8, " more") : "";
    if (!options.allow_unexpected_tensors) {
      return absl::InvalidArgumentError(absl::StrCat(dir_name, ": the checkpoint has tensors model_type ",
                                                     config->model_type, " does not use: ", list, more,
                                                     " (does config.json match the weights?)"));
    }
    out.warnings.push_back(absl::StrCat("ignored checkpoint tensors: ", list, more));
  }
  out.model = *std::move(model);
  return out;
}

absl::Status SaveHfModel(const CausalLM& model, const std::string& dir_name, const SaveOptions& options) {
  const fs::path dir(dir_name);
  const torch::ScalarType dtype = options.dtype.value_or(model.dtype());
  absl::StatusOr<std::string> dtype_name = TorchDtypeName(dtype);
  if (!dtype_name.ok()) return dtype_name.status();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir_name, ": ", ec.message()));

  // Stale weights from an earlier save would shadow or confuse this one.
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string f = entry.path().filename().string();
    if (f == kSingleFile || f == kIndexFile ||
        (absl::StartsWith(f, "model-") && absl::StrContains(f, "-of-") && absl::EndsWith(f, ".safetensors"))) {
      fs::remove(entry.path(), ec);
    }
  }

  // Partition in parameter order (embedding, blocks in order, head), so each
  // shard holds whole layers where it can.
  const size_t elem = torch::elementSize(dtype);
  std::vector<std::vector<std::pair<std::string, torch::Tensor>>> shards(1);
  uint64_t shard_bytes = 0, total = 0;
  for (const auto& item : model.named_parameters()) {
    const uint64_t bytes = static_cast<uint64_t>(item.value().numel()) * elem;
    if (options.max_shard_bytes > 0 && shard_bytes > 0 && shard_bytes + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().emplace_back(item.key(), item.value());
    shard_bytes += bytes;
    total += bytes;
  }
  const st::Metadata metadata = {{"format", "pt"}};  // transformers refuses files without it
  json weight_map = json::object();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string file = shards.size() == 1
                                 ? std::string(kSingleFile)
                                 : absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, shards.size());
    // Converted one shard at a time, so saving needs at most one shard of
    // extra memory.
    st::TensorMap tensors;
    for (const auto& [name, t] : shards[i]) {
      tensors.emplace(name, t.detach().to(dtype));
      weight_map[name] = file;
    }
    if (absl::Status s = st::SaveTensors((dir / file).string(), tensors, metadata); !s.ok()) return s;
  }
  if (shards.size() > 1) {
    json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    if (absl::Status s = WriteText(dir / kIndexFile, index.dump(2) + "\n"); !s.ok()) return s;
  }
  return WriteText(dir / "config.json", ConfigToJson(model.config(), *dtype_name).dump(2) + "\n");
}

}  // namespace loupe::lm
