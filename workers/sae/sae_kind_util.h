// Helpers the sae.train and sae.eval kinds share: parameter-table entries,
// the normalisation of activations, and where a job's checkpoint lives.
// Header-only; stateless.
#ifndef LOUPE_WORKERS_SAE_SAE_KIND_UTIL_H_
#define LOUPE_WORKERS_SAE_SAE_KIND_UTIL_H_

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "workers/runtime/job_context.h"
#include "workers/runtime/job_kind.h"
#include "workers/runtime/param_builders.h"
#include "workers/sae/activation_stream.h"
#include "workers/sae/sae_model.h"

namespace loupe::sae {

using ::loupe::ChoiceParam;
using ::loupe::NumberParam;
using ::loupe::ReferenceParam;
using ::loupe::TextParam;

// The source parameters both kinds declare (same names, same meaning).
inline std::vector<ParamSpec> SourceParams() {
  return {
      ReferenceParam("file", "source=file: safetensors or .npy activations [n, d_model] (F32/F16/BF16): "
                             "dataset:ID, job:ID/NAME or an allowed path"),
      TextParam("tensor", "source=file: the safetensors tensor holding the activations (default: the only one)"),
      ReferenceParam("model", "source=lm: a Hugging Face model directory (job:ID of lm.train, or a path)"),
      TextParam("hook", "source=lm: hook point, a site (resid_pre, attn_out, resid_mid, mlp_out, resid_post) "
                        "combined with layer, or a full name such as blocks.3.hook_resid_post",
                "resid_post"),
      NumberParam("layer", "source=lm: the block of the hook (with a site name in hook)", "0", 0, 4096),
      ReferenceParam("corpus", "source=lm: the text run through the model (the last 10% is held out)"),
      ReferenceParam("tokenizer", "source=lm: tokenizer.json (default: the model directory's)"),
      NumberParam("context_length", "source=lm: tokens per sequence", "128", 2, 1 << 20),
      TextParam("prepend_bos", "source=lm: start every sequence with the BOS (else EOS) token", "true"),
      NumberParam("skip_positions", "source=lm: leading positions of each sequence left out (BOS, attention sink)",
                  "1", 0, 1 << 20),
      NumberParam("shuffle_buffer", "source=lm: rows mixed before batching (0: corpus order)", "16384", 0, 1 << 24),
  };
}

// SAELens's "expected_average_only_in": the factor s with E||s x|| = sqrt(d).
inline double ExpectedNormScale(const torch::Tensor& x) {
  const double mean_norm = x.norm(2, 1).mean().item<double>();
  return mean_norm > 0 ? std::sqrt(static_cast<double>(x.size(1))) / mean_norm : 1.0;
}

// An SAE trained on s·x, rewritten to act on x directly (so the saved SAE
// needs no normalisation): W_enc·s, b_dec/s, W_dec/s.
inline SaeModel FoldInputScale(SaeModel m, double s) {
  m.W_enc = m.W_enc * s;
  m.b_dec = m.b_dec / s;
  m.W_dec = m.W_dec / s;
  return m;
}

// Multiplies every row of an inner stream by a constant.
class ScaledStream : public ActivationStream {
 public:
  ScaledStream(ActivationStream* inner, double scale) : inner_(inner), scale_(scale) {}
  absl::StatusOr<torch::Tensor> Next(int64_t n) override {
    absl::StatusOr<torch::Tensor> x = inner_->Next(n);
    if (!x.ok() || scale_ == 1.0) return x;
    return *x * scale_;
  }
  int64_t d_model() const override { return inner_->d_model(); }
  std::map<std::string, torch::Tensor> Position() const override { return inner_->Position(); }
  absl::Status Restore(const std::map<std::string, torch::Tensor>& p) override { return inner_->Restore(p); }

 private:
  ActivationStream* inner_;
  double scale_;
};

// Where a job keeps its resumable checkpoint: the job's state directory,
// which survives retries and server restarts, so the next attempt resumes.
inline std::string CheckpointPath(const JobContext& ctx) {
  return (std::filesystem::path(ctx.state_dir()) / "sae_checkpoint.safetensors").string();
}

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_SAE_KIND_UTIL_H_
