#include "workers/dark_matter/error_sae.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "workers/dark_matter/decomposition.h"
#include "workers/sae/sae_trainer.h"

namespace loupe::dark_matter {

absl::StatusOr<ErrorSaeResult> TrainErrorSae(const torch::Tensor& train, const torch::Tensor& test,
                                             const ErrorSaeOptions& options) {
  if (train.dim() != 2 || train.size(0) < 2) {
    return absl::InvalidArgumentError("error SAE: need at least 2 training rows");
  }
  if (options.k < 1 || options.k > options.d_sae) {
    return absl::InvalidArgumentError(absl::StrCat("error SAE: k ", options.k, " outside [1, d_sae = ", options.d_sae, "]"));
  }
  // The analyses run under NoGradGuard; training needs autograd back on.
  torch::AutoGradMode grad_on(true);
  torch::Tensor x_train = train.to(torch::kFloat32);
  const int64_t d = x_train.size(1);
  at::Generator gen = at::detail::createCPUGenerator(options.seed);
  sae::SaeTrainerOptions topt;
  topt.architecture = sae::SaeArchitecture::kTopK;
  topt.d_in = d;
  topt.d_sae = options.d_sae;
  topt.k = options.k;
  topt.lr = options.lr;
  topt.total_steps = options.steps;
  topt.warmup_steps = std::min(options.warmup_steps, options.steps);
  sae::SaeTrainer trainer(topt, x_train.device(), gen);
  trainer.InitDecoderBias(x_train.slice(0, 0, std::min<int64_t>(x_train.size(0), 4096)));
  ErrorSaeResult result;
  double tail_fvu = 0;
  int64_t tail_n = 0;
  const int64_t tail_from = options.steps - std::max<int64_t>(1, options.steps / 10);
  for (int64_t step = 0; step < options.steps; ++step) {
    torch::Tensor idx = torch::randint(x_train.size(0), {options.batch_size}, gen,
                                       torch::TensorOptions().dtype(torch::kInt64));
    sae::TrainStepStats st = trainer.Step(x_train.index_select(0, idx.to(x_train.device())));
    if (step >= tail_from) tail_fvu += st.fvu, ++tail_n;
    if (options.progress && (step % 50 == 0 || step + 1 == options.steps)) {
      if (absl::Status s = options.progress(step + 1, options.steps); !s.ok()) return s;
    }
  }
  result.final_train_fvu = tail_n > 0 ? tail_fvu / static_cast<double>(tail_n) : 0;
  result.sae = SaeHandle{"error_sae", trainer.Model()};
  torch::Tensor x_test = test.to(torch::kFloat32).to(x_train.device());
  torch::Tensor codes = result.sae.Encode(x_test);
  result.fvu = Fvu(x_test, result.sae.Decode(codes, x_test));
  result.l0 = (codes > 0).sum(1).to(torch::kFloat64).mean().item<double>();
  result.dead_fraction = ((codes > 0).sum(0) == 0).to(torch::kFloat64).mean().item<double>();
  return result;
}

}  // namespace loupe::dark_matter
