#include "workers/bnn/trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "absl/strings/str_cat.h"

namespace loupe::bnn {

namespace F = torch::nn::functional;

double ScheduledLr(const TrainOptions& o, int64_t step, int64_t total) {
  if (step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  const int64_t span = std::max<int64_t>(1, total - o.warmup_steps);
  const double t = std::min(1.0, static_cast<double>(step - o.warmup_steps) / static_cast<double>(span));
  if (o.lr_schedule == "cosine") return o.lr * 0.5 * (1.0 + std::cos(M_PI * t));
  if (o.lr_schedule == "linear") return o.lr * (1.0 - t);
  return o.lr;
}

int64_t StepsPerEpoch(int64_t examples, int64_t batch_size) { return (examples + batch_size - 1) / batch_size; }

std::pair<torch::Tensor, torch::Tensor> ChannelStats(const torch::Tensor& images) {
  const torch::Tensor mean = images.mean({0, 2, 3});
  const torch::Tensor std = images.std({0, 2, 3}).clamp_min(1e-6);
  return {mean, std};
}

torch::Tensor Normalize(const torch::Tensor& images, const torch::Tensor& mean, const torch::Tensor& std) {
  return (images - mean.reshape({1, -1, 1, 1})) / std.reshape({1, -1, 1, 1});
}

void RecalibrateBatchNorm(BnnNetwork& net, const ImageSet& train, int64_t batch_size, int64_t max_images) {
  std::vector<std::pair<torch::nn::BatchNorm2dImpl*, c10::optional<double>>> bns;
  for (const auto& m : net->modules(/*include_self=*/false)) {
    if (auto* bn = m->as<torch::nn::BatchNorm2dImpl>()) {
      bns.emplace_back(bn, bn->options.momentum());
      bn->reset_running_stats();
      bn->options.momentum(c10::nullopt);  // cumulative average
    }
  }
  const bool was_training = net->is_training();
  net->train();
  torch::NoGradGuard no_grad;
  const torch::Device device = net->parameters().front().device();
  const int64_t n = std::min(max_images, train.images.size(0));
  for (int64_t i = 0; i < n; i += batch_size) {
    net->forward(train.images.slice(0, i, std::min(n, i + batch_size)).to(device));
  }
  for (auto& [bn, momentum] : bns) bn->options.momentum(momentum);
  net->train(was_training);
}

double Evaluate(BnnNetwork& net, const ImageSet& test, int64_t batch_size) {
  const bool was_training = net->is_training();
  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Device device = net->parameters().front().device();
  int64_t correct = 0;
  const int64_t n = test.images.size(0);
  for (int64_t i = 0; i < n; i += batch_size) {
    const int64_t end = std::min(n, i + batch_size);
    const torch::Tensor logits = net->forward(test.images.slice(0, i, end).to(device));
    correct += logits.argmax(1).to(torch::kCPU).eq(test.labels.slice(0, i, end)).sum().item<int64_t>();
  }
  net->train(was_training);
  return static_cast<double>(correct) / static_cast<double>(n);
}

absl::Status Train(BnnNetwork& net, const ImageSet& train, const ImageSet& test, const TrainOptions& o,
                   BnnNetwork* teacher, const TrainCallbacks& cb) {
  const torch::Device device = net->parameters().front().device();
  torch::optim::Adam opt(net->parameters(),
                         torch::optim::AdamOptions(o.lr).betas({0.9, 0.99}).weight_decay(o.weight_decay));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed ^ 0x5DEECE66Dull);
  const int64_t n = train.images.size(0);
  const int64_t per_epoch = StepsPerEpoch(n, o.batch_size);
  const int64_t total = per_epoch * o.epochs;
  if (teacher != nullptr) (*teacher)->eval();
  int64_t step = 0;
  for (int64_t epoch = 1; epoch <= o.epochs; ++epoch) {
    net->train();
    const torch::Tensor order = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kLong));
    double loss_sum = 0;
    double lr = o.lr;
    for (int64_t b = 0; b < per_epoch; ++b, ++step) {
      const torch::Tensor idx = order.slice(0, b * o.batch_size, std::min(n, (b + 1) * o.batch_size));
      const torch::Tensor x = train.images.index_select(0, idx).to(device);
      const torch::Tensor y = train.labels.index_select(0, idx).to(device);
      lr = ScheduledLr(o, step, total);
      for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
      const torch::Tensor logits = net->forward(x);
      torch::Tensor loss;
      if (teacher != nullptr) {
        torch::Tensor soft;
        {
          torch::NoGradGuard no_grad;
          soft = F::softmax((*teacher)->forward(x) / o.distill_temperature, 1);
        }
        const double t = o.distill_temperature;
        loss = -(soft * F::log_softmax(logits / t, 1)).sum(1).mean() * (t * t);
      } else {
        loss = F::cross_entropy(logits, y);
      }
      opt.zero_grad();
      loss.backward();
      opt.step();
      const double l = loss.item<double>();
      if (!std::isfinite(l)) {
        return absl::InternalError(absl::StrCat("training diverged at step ", step + 1, " (loss ", l,
                                                "); lower lr"));
      }
      loss_sum += l;
      if (cb.on_step) {
        if (absl::Status s = cb.on_step(step + 1, l); !s.ok()) return s;
      }
    }
    EpochReport r;
    r.epoch = epoch;
    r.train_loss = loss_sum / static_cast<double>(per_epoch);
    RecalibrateBatchNorm(net, train, o.batch_size, o.calibration_images);
    r.test_accuracy = Evaluate(net, test);
    r.lr = lr;
    if (cb.on_epoch) cb.on_epoch(r);
  }
  return absl::OkStatus();
}

}  // namespace loupe::bnn
