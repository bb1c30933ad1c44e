// Opens the activation source an SAE kind names (source=synthetic|file|lm),
// for training (a shuffled, cycling stream) and for held-out scoring (rows
// never trained on), plus what the LM splice needs. Shared by sae.train and
// sae.eval so both read the same parameters the same way.
//
//   synthetic  SyntheticSource; held-out rows are fresh draws.
//   file       safetensors/.npy [n, d_model]; the last eval_rows rows (at most
//              a tenth of the file) are held out, the rest trained on.
//   lm         a Hugging Face model directory (job:ID of lm.train, or a
//              path), hook (a full "blocks.L.hook_<site>" name, or a site such
//              as "resid_post" combined with layer=L), a text corpus whose last
//              10% is held out; ActivationSource does BOS/skip/shuffle.
//
// Not thread-safe; the returned streams belong to one job.
#ifndef LOUPE_WORKERS_SAE_SAE_SOURCES_H_
#define LOUPE_WORKERS_SAE_SAE_SOURCES_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "workers/lm/model/causal_lm.h"
#include "workers/lm/model/hooks.h"
#include "workers/runtime/job_context.h"
#include "workers/sae/activation_stream.h"
#include "workers/sae/synthetic_source.h"

namespace loupe::sae {

struct SourceSpec {
  std::string source = "synthetic";
  uint64_t seed = 0;
  SyntheticOptions synthetic;
  std::string file, tensor;
  std::string model, tokenizer, corpus, hook = "resid_post";
  int64_t layer = 0;
  int64_t context_length = 128;
  bool prepend_bos = true;
  int64_t skip_positions = 1;
  int64_t shuffle_buffer = 16384;
  int64_t eval_rows = 16384;  // rows held out (file) / drawn (synthetic, lm)
};

struct OpenedSource {
  std::unique_ptr<ActivationStream> train;
  std::unique_ptr<ActivationStream> eval;
  int64_t d_model = 0;
  // synthetic: ground-truth feature directions [n_features, d_model].
  torch::Tensor ground_truth;
  // lm: the model, the hook and held-out sequences for the CE/KL splice.
  std::shared_ptr<lm::CausalLM> model;
  lm::HookPoint hook;
  torch::Tensor eval_sequences;  // [n, context_length] int64
  int64_t skip_positions = 0;
  // SAELens cfg.json metadata describing the data (model_name, hook_name, ...).
  nlohmann::json metadata = nlohmann::json::object();
  std::string description;
};

// "resid_post" + layer 3 → "blocks.3.hook_resid_post"; full names pass.
absl::StatusOr<lm::HookPoint> ResolveHook(const std::string& hook, int64_t layer);

// Errors are INVALID_ARGUMENT "<kind> parameter '<name>': ..." where a
// parameter is at fault.
absl::StatusOr<OpenedSource> OpenSource(const SourceSpec& spec, JobContext& ctx, absl::string_view kind,
                                        torch::Device device);

// A stream over a synthetic source (shared by the train and eval streams).
class SyntheticStream : public ActivationStream {
 public:
  explicit SyntheticStream(std::shared_ptr<SyntheticSource> source) : source_(std::move(source)) {}
  absl::StatusOr<torch::Tensor> Next(int64_t n) override { return source_->Sample(n); }
  int64_t d_model() const override { return source_->options().d_model; }
  std::map<std::string, torch::Tensor> Position() const override;
  absl::Status Restore(const std::map<std::string, torch::Tensor>& position) override;

 private:
  std::shared_ptr<SyntheticSource> source_;
};

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_SAE_SOURCES_H_
