// ModelConfig: the hyper-parameters of a decoder-only language model, read
// from and written to a Hugging Face config.json.
//
// Loupe uses its own field names internally (d_model, n_layers, ...) and maps
// them to each model_type's HF names at the file boundary:
//   gpt2:                 n_embd, n_layer, n_head, n_inner, n_positions,
//                         layer_norm_epsilon, activation_function, vocab_size
//   llama/mistral/qwen2:  hidden_size, num_hidden_layers, num_attention_heads,
//                         num_key_value_heads, head_dim, intermediate_size,
//                         max_position_embeddings, rms_norm_eps, rope_theta,
//                         hidden_act, tie_word_embeddings, attention_bias,
//                         mlp_bias, sliding_window, use_sliding_window
// The whole config.json as read is kept in `hf`, so fields Loupe does not
// interpret (bos_token_id, eos_token_id, ...) survive a load/save round trip.
//
// A plain value type; copy freely.
#ifndef LOUPE_WORKERS_LM_MODEL_CONFIG_H_
#define LOUPE_WORKERS_LM_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace loupe::lm {

enum class Architecture { kGpt2, kLlama };

// The MLP non-linearities HF configs name. kGeluTanh is the tanh
// approximation GPT-2 was trained with ("gelu_new", alias "gelu_pytorch_tanh"
// and "gelu_fast"); kGelu the exact erf form ("gelu"); kSilu "silu"/"swish".
enum class Activation { kGeluTanh, kGelu, kRelu, kSilu };

struct ModelConfig {
  Architecture architecture = Architecture::kLlama;
  std::string model_type = "llama";  // gpt2 | llama | mistral | qwen2
  int64_t vocab_size = 0;
  int64_t d_model = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;  // == n_heads for GPT-2
  int64_t head_dim = 0;    // d_model / n_heads unless config.json sets head_dim
  int64_t d_mlp = 0;       // GPT-2 n_inner (null: 4 * n_embd); intermediate_size
  int64_t max_positions = 0;
  double norm_eps = 1e-5;
  Activation activation = Activation::kSilu;
  bool tie_word_embeddings = true;

  // Llama family.
  double rope_theta = 10000.0;
  // config.json rope_scaling: how the rotary frequencies are rescaled for
  // contexts longer than the model was pretrained on. kLinear divides every
  // frequency by `factor` (positions / factor); kLlama3 (Llama 3.1 and
  // later) divides only the low frequencies, whose wavelength exceeds
  // original_max_positions / low_freq_factor, keeps those shorter than
  // original_max_positions / high_freq_factor, and interpolates between.
  // Neither changes the attention scale.
  struct RopeScaling {
    enum Type { kNone, kLinear, kLlama3 };
    Type type = kNone;
    double factor = 1.0;
    double low_freq_factor = 1.0;
    double high_freq_factor = 4.0;
    int64_t original_max_positions = 8192;
  };
  RopeScaling rope_scaling;
  bool qkv_bias = false;  // llama attention_bias; always on for qwen2
  bool o_bias = false;    // llama attention_bias (qwen2 has none on o_proj)
  bool mlp_bias = false;  // llama mlp_bias
  // Effective sliding window (nullopt when the config disables it). Loupe does
  // not implement windowed attention: Forward refuses sequences longer than
  // the window, so every result it returns is exact.
  std::optional<int64_t> sliding_window;

  // GPT-2.
  bool scale_attn_weights = true;
  bool scale_attn_by_inverse_layer_idx = false;

  // Training only (dropout is applied in train() mode, never in eval()).
  double embd_pdrop = 0.0;
  double attn_pdrop = 0.0;
  double resid_pdrop = 0.0;
  double initializer_range = 0.02;

  // config.json as read (or {} for a config built in code).
  nlohmann::json hf = nlohmann::json::object();

  // Token ids that end generation: eos_token_id from config.json (an int or a
  // list), empty if absent.
  std::vector<int64_t> EosTokenIds() const;
};

// Parses a config.json object. Unknown model_type: UNIMPLEMENTED naming the
// supported ones; missing or ill-typed fields: INVALID_ARGUMENT naming the
// field. Things Loupe accepts but handles specially (a sliding window, an
// ignored field) are described in `warnings` when it is non-null.
absl::StatusOr<ModelConfig> ConfigFromJson(const nlohmann::json& j,
                                           std::vector<std::string>* warnings = nullptr);
absl::StatusOr<ModelConfig> ReadConfigFile(const std::string& path,
                                           std::vector<std::string>* warnings = nullptr);

// The config.json transformers expects: `hf` with Loupe's values written over
// it under the model_type's HF names, plus architectures, model_type and
// torch_dtype ("float32", "float16" or "bfloat16").
nlohmann::json ConfigToJson(const ModelConfig& config, const std::string& torch_dtype);

// Positive sizes, heads dividing the model width, kv heads dividing heads.
absl::Status ValidateConfig(const ModelConfig& config);

// Configs for models built from scratch (lm.train). Fields not given take
// the HF defaults of that model_type.
ModelConfig MakeGpt2Config(int64_t vocab_size, int64_t d_model, int64_t n_layers,
                           int64_t n_heads, int64_t max_positions);
ModelConfig MakeLlamaConfig(int64_t vocab_size, int64_t d_model, int64_t n_layers,
                            int64_t n_heads, int64_t n_kv_heads, int64_t d_mlp,
                            int64_t max_positions);

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_MODEL_CONFIG_H_
