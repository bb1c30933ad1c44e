// Training and evaluation loops for BnnNetwork on an ImageSet: Adam with a
// warm-up + cosine/linear/constant schedule, optional distillation from a
// teacher (cross-entropy against its temperature-softened softmax, as
// PokeBNN's KD). Functions run on the calling thread; the network must not be
// used elsewhere meanwhile.
#ifndef LOUPE_WORKERS_BNN_TRAINER_H_
#define LOUPE_WORKERS_BNN_TRAINER_H_

#include <torch/torch.h>

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "workers/bnn/image_data.h"
#include "workers/bnn/network.h"

namespace loupe::bnn {

struct TrainOptions {
  int64_t epochs = 1;
  int64_t batch_size = 128;
  double lr = 2e-3;
  std::string lr_schedule = "cosine";  // "cosine", "linear" or "constant"
  int64_t warmup_steps = 0;
  double weight_decay = 5e-5;
  double distill_temperature = 1.0;
  uint64_t seed = 0;
  // Training images used to re-estimate BN statistics after each epoch.
  int64_t calibration_images = 4096;
};

// Learning rate at `step` (0-based) of `total` steps.
double ScheduledLr(const TrainOptions& o, int64_t step, int64_t total);

int64_t StepsPerEpoch(int64_t examples, int64_t batch_size);

struct EpochReport {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0;
  double test_accuracy = 0;
  double lr = 0;
};

struct TrainCallbacks {
  // After every step; a non-OK status stops training and is returned.
  std::function<absl::Status(int64_t step, double loss)> on_step;
  std::function<void(const EpochReport&)> on_epoch;
};

// Trains `net` in place and evaluates it on `test` after every epoch.
// `teacher` (may be null) is used in eval mode as the distillation target.
absl::Status Train(BnnNetwork& net, const ImageSet& train, const ImageSet& test, const TrainOptions& options,
                   BnnNetwork* teacher, const TrainCallbacks& callbacks);

// Re-estimates every BatchNorm's running statistics as the plain average of
// batch statistics over (up to) `max_images` training images in batches of
// `batch_size`, without touching the weights. Short runs need it: an
// exponential average with momentum 0.1 still carries ~10% of its initial
// variance 1 after 20 steps, which swamps channels whose true variance is
// tiny and leaves eval-mode outputs nearly constant.
void RecalibrateBatchNorm(BnnNetwork& net, const ImageSet& train, int64_t batch_size, int64_t max_images);

// Top-1 accuracy in eval mode, in batches of `batch_size`.
double Evaluate(BnnNetwork& net, const ImageSet& test, int64_t batch_size = 500);

// Per-channel mean and std of the training images; Normalize applies them.
std::pair<torch::Tensor, torch::Tensor> ChannelStats(const torch::Tensor& images);
torch::Tensor Normalize(const torch::Tensor& images, const torch::Tensor& mean, const torch::Tensor& std);

}  // namespace loupe::bnn

#endif  // LOUPE_WORKERS_BNN_TRAINER_H_
