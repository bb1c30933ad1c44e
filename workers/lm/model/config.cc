#include "workers/lm/model/config.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace loupe::lm {
namespace {

using json = nlohmann::json;

// Field access with the error messages a user editing config.json needs. A
// field that is absent or null takes `fallback` when given, else is an error.
class Fields {
 public:
  Fields(const json& j, std::string model_type) : j_(j), model_type_(std::move(model_type)) {}

  const absl::Status& status() const { return status_; }

  bool Present(const char* name) const { return j_.contains(name) && !j_[name].is_null(); }

  int64_t Int(const char* name, std::optional<int64_t> fallback = std::nullopt) {
    if (!Present(name)) return Missing(name, fallback).value_or(0);
    const json& v = j_[name];
    if (!v.is_number_integer()) {
      Bad(name, "an integer");
      return 0;
    }
    return v.get<int64_t>();
  }

  double Double(const char* name, std::optional<double> fallback = std::nullopt) {
    if (!Present(name)) return Missing(name, fallback).value_or(0.0);
    const json& v = j_[name];
    if (!v.is_number()) {
      Bad(name, "a number");
      return 0.0;
    }
    return v.get<double>();
  }

  bool Bool(const char* name, bool fallback) {
    if (!Present(name)) return fallback;
    const json& v = j_[name];
    if (!v.is_boolean()) {
      Bad(name, "true or false");
      return false;
    }
    return v.get<bool>();
  }

  std::string String(const char* name, const std::string& fallback) {
    if (!Present(name)) return fallback;
    const json& v = j_[name];
    if (!v.is_string()) {
      Bad(name, "a string");
      return std::string();
    }
    return v.get<std::string>();
  }

 private:
  template <typename T>
  std::optional<T> Missing(const char* name, std::optional<T> fallback) {
    if (!fallback.has_value() && status_.ok()) {
      status_ = absl::InvalidArgumentError(
          absl::StrCat("config.json (model_type ", model_type_, ") lacks required field '", name, "'"));
    }
    return fallback;
  }
  void Bad(const char* name, const char* what) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(absl::StrCat("config.json field '", name, "' must be ", what,
                                                        ", got ", j_[name].dump()));
    }
  }

  const json& j_;
  std::string model_type_;
  absl::Status status_;
};

absl::StatusOr<Activation> ParseActivation(const std::string& name) {
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::kGeluTanh;
  if (name == "gelu") return Activation::kGelu;
  if (name == "relu") return Activation::kRelu;
  if (name == "silu" || name == "swish") return Activation::kSilu;
  return absl::UnimplementedError(absl::StrCat(
      "activation '", name, "' is not supported (supported: gelu_new, gelu_pytorch_tanh, gelu_fast, gelu, relu, silu)"));
}

std::string ActivationName(Activation a) {
  switch (a) {
    case Activation::kGeluTanh: return "gelu_new";
    case Activation::kGelu: return "gelu";
    case Activation::kRelu: return "relu";
    case Activation::kSilu: return "silu";
  }
  return "silu";
}

// HF writes rope_scaling null for plain RoPE. "linear" and "llama3" are
// implemented; the others (dynamic NTK, YaRN, LongRoPE) rescale in ways Loupe
// does not, and silently ignoring them would give wrong logits.
absl::Status ParseRopeScaling(const json& j, ModelConfig::RopeScaling* out) {
  *out = {};
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return absl::OkStatus();
  const json& r = j["rope_scaling"];
  if (!r.is_object()) return absl::InvalidArgumentError("config.json rope_scaling must be an object or null");
  std::string type = "?";
  for (const char* key : {"rope_type", "type"}) {
    if (r.contains(key) && r[key].is_string()) {
      type = r[key].get<std::string>();
      break;
    }
  }
  if (type == "default") return absl::OkStatus();
  auto number = [&](const char* key, double fallback, bool required) -> absl::StatusOr<double> {
    if (!r.contains(key)) {
      if (required) return absl::InvalidArgumentError(absl::StrCat("config.json rope_scaling lacks '", key, "'"));
      return fallback;
    }
    if (!r[key].is_number()) {
      return absl::InvalidArgumentError(absl::StrCat("config.json rope_scaling '", key, "' must be a number"));
    }
    return r[key].get<double>();
  };
  if (type != "linear" && type != "llama3") {
    return absl::UnimplementedError(absl::StrCat("config.json rope_scaling of type '", type,
                                                 "' is not supported (supported: null, default, linear, llama3)"));
  }
  absl::StatusOr<double> factor = number("factor", 1.0, /*required=*/true);
  if (!factor.ok()) return factor.status();
  if (*factor < 1.0) return absl::InvalidArgumentError("config.json rope_scaling 'factor' must be >= 1");
  out->factor = *factor;
  if (type == "linear") {
    out->type = ModelConfig::RopeScaling::kLinear;
    return absl::OkStatus();
  }
  out->type = ModelConfig::RopeScaling::kLlama3;
  absl::StatusOr<double> low = number("low_freq_factor", 1.0, true);
  absl::StatusOr<double> high = number("high_freq_factor", 4.0, true);
  absl::StatusOr<double> original = number("original_max_position_embeddings", 8192, true);
  for (const auto* v : {&low, &high, &original}) {
    if (!v->ok()) return v->status();
  }
  if (!(*high > *low) || *low <= 0 || *original < 1) {
    return absl::InvalidArgumentError(
        "config.json rope_scaling (llama3) needs high_freq_factor > low_freq_factor > 0 and "
        "original_max_position_embeddings >= 1");
  }
  out->low_freq_factor = *low;
  out->high_freq_factor = *high;
  out->original_max_positions = static_cast<int64_t>(*original);
  return absl::OkStatus();
}

absl::Status ParseGpt2(const json& j, ModelConfig* c, std::vector<std::string>* warnings) {
  Fields f(j, "gpt2");
  c->architecture = Architecture::kGpt2;
  c->vocab_size = f.Int("vocab_size");
  c->d_model = f.Int("n_embd");
  c->n_layers = f.Int("n_layer");
  c->n_heads = f.Int("n_head");
  c->n_kv_heads = c->n_heads;
  c->max_positions = f.Int("n_positions");
  c->d_mlp = f.Int("n_inner", 4 * c->d_model);
  c->norm_eps = f.Double("layer_norm_epsilon", 1e-5);
  const std::string act = f.String("activation_function", "gelu_new");
  c->tie_word_embeddings = f.Bool("tie_word_embeddings", true);
  c->scale_attn_weights = f.Bool("scale_attn_weights", true);
  c->scale_attn_by_inverse_layer_idx = f.Bool("scale_attn_by_inverse_layer_idx", false);
  c->embd_pdrop = f.Double("embd_pdrop", 0.1);
  c->attn_pdrop = f.Double("attn_pdrop", 0.1);
  c->resid_pdrop = f.Double("resid_pdrop", 0.1);
  c->initializer_range = f.Double("initializer_range", 0.02);
  if (!f.status().ok()) return f.status();
  if (c->d_model > 0 && c->n_heads > 0) c->head_dim = c->d_model / c->n_heads;
  absl::StatusOr<Activation> a = ParseActivation(act);
  if (!a.ok()) return a.status();
  c->activation = *a;
  if (f.Bool("add_cross_attention", false)) {
    return absl::UnimplementedError("config.json add_cross_attention=true (an encoder-decoder GPT-2) is not supported");
  }
  return absl::OkStatus();
}

absl::Status ParseLlamaFamily(const json& j, ModelConfig* c, std::vector<std::string>* warnings) {
  const std::string& type = c->model_type;
  Fields f(j, type);
  c->architecture = Architecture::kLlama;
  c->vocab_size = f.Int("vocab_size");
  c->d_model = f.Int("hidden_size");
  c->n_layers = f.Int("num_hidden_layers");
  c->n_heads = f.Int("num_attention_heads");
  // HF: absent takes the class default (8 for Mistral, else the head count);
  // null means "as many as query heads".
  if (type == "mistral" && !j.contains("num_key_value_heads")) {
    c->n_kv_heads = 8;
  } else {
    c->n_kv_heads = f.Int("num_key_value_heads", c->n_heads);
  }
  c->d_mlp = f.Int("intermediate_size");
  c->max_positions = f.Int("max_position_embeddings");
  c->norm_eps = f.Double("rms_norm_eps", 1e-6);
  c->rope_theta = f.Double("rope_theta", 10000.0);
  c->tie_word_embeddings = f.Bool("tie_word_embeddings", false);
  const std::string act = f.String("hidden_act", "silu");
  c->attn_pdrop = f.Double("attention_dropout", 0.0);
  c->initializer_range = f.Double("initializer_range", 0.02);
  if (type == "llama") {
    c->qkv_bias = c->o_bias = f.Bool("attention_bias", false);
    c->mlp_bias = f.Bool("mlp_bias", false);
  } else if (type == "qwen2") {
    c->qkv_bias = true;  // Qwen2's q/k/v projections always carry a bias
  }
  if (!f.status().ok()) return f.status();
  if (c->d_model > 0 && c->n_heads > 0) c->head_dim = c->d_model / c->n_heads;
  if (f.Present("head_dim")) c->head_dim = f.Int("head_dim");
  if (!f.status().ok()) return f.status();
  absl::StatusOr<Activation> a = ParseActivation(act);
  if (!a.ok()) return a.status();
  c->activation = *a;
  if (absl::Status s = ParseRopeScaling(j, &c->rope_scaling); !s.ok()) return s;

  std::optional<int64_t> window;
  if (type == "mistral" && f.Present("sliding_window")) window = f.Int("sliding_window");
  if (type == "qwen2" && f.Bool("use_sliding_window", false) && f.Present("sliding_window")) {
    window = f.Int("sliding_window");
  }
  if (!f.status().ok()) return f.status();
  c->sliding_window = window;
  if (window.has_value() && warnings != nullptr) {
    if (*window >= c->max_positions) {
      warnings->push_back(absl::StrCat("sliding_window ", *window, " >= max_position_embeddings ",
                                       c->max_positions, ": ignored (full causal attention is identical up to ",
                                       *window, " tokens)"));
    } else {
      warnings->push_back(absl::StrCat("sliding_window ", *window, " < max_position_embeddings ", c->max_positions,
                                       ": windowed attention is not implemented, so sequences longer than ",
                                       *window, " tokens are refused"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<int64_t> ModelConfig::EosTokenIds() const {
  std::vector<int64_t> out;
  if (!hf.contains("eos_token_id")) return out;
  const json& e = hf["eos_token_id"];
  if (e.is_number_integer()) out.push_back(e.get<int64_t>());
  if (e.is_array()) {
    for (const json& v : e) {
      if (v.is_number_integer()) out.push_back(v.get<int64_t>());
    }
  }
  return out;
}

absl::StatusOr<ModelConfig> ConfigFromJson(const json& j, std::vector<std::string>* warnings) {
  if (!j.is_object()) return absl::InvalidArgumentError("config.json is not a JSON object");
  if (!j.contains("model_type") || !j["model_type"].is_string()) {
    return absl::InvalidArgumentError("config.json lacks 'model_type' (a string such as \"gpt2\" or \"llama\")");
  }
  ModelConfig c;
  c.model_type = j["model_type"].get<std::string>();
  c.hf = j;
  absl::Status s;
  if (c.model_type == "gpt2") {
    s = ParseGpt2(j, &c, warnings);
  } else if (c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "qwen2") {
    s = ParseLlamaFamily(j, &c, warnings);
  } else {
    return absl::UnimplementedError(absl::StrCat("unsupported architecture: config.json model_type '",
                                                 c.model_type, "' (supported: gpt2, llama, mistral, qwen2)"));
  }
  if (!s.ok()) return s;
  if (absl::Status v = ValidateConfig(c); !v.ok()) return v;
  return c;
}

absl::StatusOr<ModelConfig> ReadConfigFile(const std::string& path, std::vector<std::string>* warnings) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, " is not valid JSON"));
  absl::StatusOr<ModelConfig> c = ConfigFromJson(j, warnings);
  if (!c.ok()) return absl::Status(c.status().code(), absl::StrCat(path, ": ", c.status().message()));
  return c;
}

json ConfigToJson(const ModelConfig& c, const std::string& torch_dtype) {
  json j = c.hf.is_object() ? c.hf : json::object();
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["initializer_range"] = c.initializer_range;
  j["torch_dtype"] = torch_dtype;
  if (j.contains("dtype")) j["dtype"] = torch_dtype;  // newer transformers' name for it
  // Keep the config's own spelling of an activation when it means the same.
  auto activation_name = [&](const char* key) {
    if (j.contains(key) && j[key].is_string()) {
      absl::StatusOr<Activation> a = ParseActivation(j[key].get<std::string>());
      if (a.ok() && *a == c.activation) return j[key].get<std::string>();
    }
    return ActivationName(c.activation);
  };
  if (c.architecture == Architecture::kGpt2) {
    j["architectures"] = json::array({"GPT2LMHeadModel"});
    j["n_embd"] = c.d_model;
    j["n_layer"] = c.n_layers;
    j["n_head"] = c.n_heads;
    j["n_inner"] = c.d_mlp;
    j["n_positions"] = c.max_positions;
    j["n_ctx"] = c.max_positions;
    j["layer_norm_epsilon"] = c.norm_eps;
    j["activation_function"] = activation_name("activation_function");
    j["scale_attn_weights"] = c.scale_attn_weights;
    j["scale_attn_by_inverse_layer_idx"] = c.scale_attn_by_inverse_layer_idx;
    j["embd_pdrop"] = c.embd_pdrop;
    j["attn_pdrop"] = c.attn_pdrop;
    j["resid_pdrop"] = c.resid_pdrop;
    return j;
  }
  const char* arch = c.model_type == "mistral" ? "MistralForCausalLM"
                     : c.model_type == "qwen2" ? "Qwen2ForCausalLM"
                                               : "LlamaForCausalLM";
  j["architectures"] = json::array({arch});
  j["hidden_size"] = c.d_model;
  j["intermediate_size"] = c.d_mlp;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  if (c.head_dim != c.d_model / c.n_heads || j.contains("head_dim")) j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_positions;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (!j.contains("rope_scaling")) j["rope_scaling"] = nullptr;
  j["hidden_act"] = activation_name("hidden_act");
  j["attention_dropout"] = c.attn_pdrop;
  if (c.model_type == "llama") {
    j["attention_bias"] = c.qkv_bias;
    j["mlp_bias"] = c.mlp_bias;
  }
  if (c.model_type == "mistral" && !j.contains("sliding_window")) j["sliding_window"] = nullptr;
  if (c.model_type == "qwen2" && !j.contains("use_sliding_window")) j["use_sliding_window"] = false;
  return j;
}

absl::Status ValidateConfig(const ModelConfig& c) {
  auto positive = [&](const char* what, int64_t v) -> absl::Status {
    if (v > 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("model config: ", what, " must be positive, got ", v));
  };
  for (auto [what, v] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size},
                         {"d_model", c.d_model},
                         {"n_layers", c.n_layers},
                         {"n_heads", c.n_heads},
                         {"n_kv_heads", c.n_kv_heads},
                         {"head_dim", c.head_dim},
                         {"d_mlp", c.d_mlp},
                         {"max_positions", c.max_positions}}) {
    if (absl::Status s = positive(what, v); !s.ok()) return s;
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("model config: num_attention_heads ", c.n_heads,
                                                   " is not a multiple of num_key_value_heads ", c.n_kv_heads));
  }
  if (c.architecture == Architecture::kGpt2) {
    if (c.d_model % c.n_heads != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("model config: n_embd ", c.d_model, " is not a multiple of n_head ", c.n_heads));
    }
    if (c.model_type != "gpt2" || c.n_kv_heads != c.n_heads || c.head_dim * c.n_heads != c.d_model) {
      return absl::InvalidArgumentError("model config: GPT-2 has model_type gpt2, one kv head per head and "
                                        "head_dim = n_embd / n_head");
    }
    return absl::OkStatus();
  }
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("model config: RoPE needs an even head_dim, got ", c.head_dim));
  }
  if (c.rope_theta <= 0) return absl::InvalidArgumentError("model config: rope_theta must be positive");
  // Only what a config.json of that model_type can express can be saved.
  if (c.model_type == "llama") {
    if (c.qkv_bias != c.o_bias) {
      return absl::InvalidArgumentError("model config: llama's attention_bias puts a bias on q, k, v and o alike");
    }
  } else if (c.model_type == "qwen2") {
    if (!c.qkv_bias || c.o_bias || c.mlp_bias) {
      return absl::InvalidArgumentError("model config: qwen2 has q/k/v biases and no o_proj or MLP bias");
    }
  } else if (c.model_type == "mistral") {
    if (c.qkv_bias || c.o_bias || c.mlp_bias) {
      return absl::InvalidArgumentError("model config: mistral has no biases");
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat("model config: model_type '", c.model_type,
                                                   "' is not in the Llama family (llama, mistral, qwen2)"));
  }
  return absl::OkStatus();
}

ModelConfig MakeGpt2Config(int64_t vocab_size, int64_t d_model, int64_t n_layers, int64_t n_heads,
                           int64_t max_positions) {
  ModelConfig c;
  c.architecture = Architecture::kGpt2;
  c.model_type = "gpt2";
  c.vocab_size = vocab_size;
  c.d_model = d_model;
  c.n_layers = n_layers;
  c.n_heads = c.n_kv_heads = n_heads;
  c.head_dim = n_heads > 0 ? d_model / n_heads : 0;
  c.d_mlp = 4 * d_model;
  c.max_positions = max_positions;
  c.norm_eps = 1e-5;
  c.activation = Activation::kGeluTanh;
  c.tie_word_embeddings = true;
  return c;
}

ModelConfig MakeLlamaConfig(int64_t vocab_size, int64_t d_model, int64_t n_layers, int64_t n_heads,
                            int64_t n_kv_heads, int64_t d_mlp, int64_t max_positions) {
  ModelConfig c;
  c.architecture = Architecture::kLlama;
  c.model_type = "llama";
  c.vocab_size = vocab_size;
  c.d_model = d_model;
  c.n_layers = n_layers;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = n_heads > 0 ? d_model / n_heads : 0;
  c.d_mlp = d_mlp;
  c.max_positions = max_positions;
  c.norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.activation = Activation::kSilu;
  c.tie_word_embeddings = false;
  return c;
}

}  // namespace loupe::lm
