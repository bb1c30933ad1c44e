#include "workers/sae/sae_trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "workers/sae/jumprelu.h"
#include "workers/sae/sae_metrics.h"
#include "workers/sae/synthetic_source.h"

namespace loupe::sae {
namespace {

struct TrainedRun {
  double mmcs = 0;
  double fvu = 0;
  double l0 = 0;
};

// Trains `arch` on a small synthetic problem and scores recovery.
TrainedRun TrainOnSynthetic(SaeArchitecture arch, int64_t steps, SaeTrainerOptions o = {}) {
  at::Generator data_gen = at::make_generator<at::CPUGeneratorImpl>(1);
  at::Generator init_gen = at::make_generator<at::CPUGeneratorImpl>(2);
  SyntheticOptions so;
  so.d_model = 32;
  so.n_features = 128;
  so.firing_probability = 0.02;
  SyntheticSource source(so, data_gen, torch::kCPU);
  o.architecture = arch;
  o.d_in = 32;
  o.d_sae = 256;
  o.k = 4;
  o.target_l0 = 4;
  o.total_steps = steps;
  o.warmup_steps = 20;
  o.lr = 0.01;  // short runs: a higher rate than the kind's default
  o.dead_window_tokens = 20000;
  SaeTrainer trainer(o, torch::kCPU, init_gen);
  trainer.InitDecoderBias(source.Sample(2048));
  TrainStepStats last;
  for (int64_t s = 0; s < steps; ++s) last = trainer.Step(source.Sample(256));
  SaeModel m = trainer.Model();
  torch::NoGradGuard ng;
  torch::Tensor x = source.Sample(4096);
  torch::Tensor z = m.Encode(x);
  TrainedRun r;
  r.mmcs = Mmcs(source.features(), m.W_dec);
  r.fvu = Fvu(x, m.Decode(z));
  r.l0 = MeanL0(z);
  std::cerr << ArchitectureName(arch) << ": mmcs " << r.mmcs << " fvu " << r.fvu << " l0 " << r.l0
            << " (train fvu " << last.fvu << ", l0 " << last.l0 << ")\n";
  return r;
}

TEST(SaeTrainerTest, TopKLearnsGroundTruth) {
  TrainedRun r = TrainOnSynthetic(SaeArchitecture::kTopK, 600);
  EXPECT_GT(r.mmcs, 0.8);
  EXPECT_LT(r.fvu, 0.3);
}

TEST(SaeTrainerTest, BatchTopKLearnsGroundTruthAndItsThresholdKeepsL0NearK) {
  TrainedRun r = TrainOnSynthetic(SaeArchitecture::kBatchTopK, 600);
  EXPECT_GT(r.mmcs, 0.8);
  EXPECT_LT(r.fvu, 0.3);
  // Inference uses the estimated threshold instead of the batch's top k × n.
  EXPECT_GT(r.l0, 2.0);
  EXPECT_LT(r.l0, 8.0);
}

TEST(SaeTrainerTest, ReluLearnsGroundTruth) {
  TrainedRun r = TrainOnSynthetic(SaeArchitecture::kRelu, 600);
  EXPECT_GT(r.mmcs, 0.8);
  EXPECT_LT(r.fvu, 0.3);
}

TEST(SaeTrainerTest, JumpReluLearnsGroundTruthNearTargetL0) {
  TrainedRun r = TrainOnSynthetic(SaeArchitecture::kJumpRelu, 600);
  EXPECT_GT(r.mmcs, 0.8);
  EXPECT_LT(r.fvu, 0.3);
  EXPECT_GT(r.l0, 2.0);
  EXPECT_LT(r.l0, 8.0);
}

}  // namespace
}  // namespace loupe::sae

namespace loupe::sae {
namespace {

// The STE's threshold gradients equal central finite differences of the
// kernel-smoothed functions (jumprelu.h), in float64.
TEST(JumpReluTest, ThresholdGradientsMatchFiniteDifferencesOfTheSmoothedLoss) {
  torch::manual_seed(5);
  const double bandwidth = 0.2;
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  torch::Tensor pre = torch::rand({64, 12}, f64) * 1.2 - 0.1;
  torch::Tensor weights = torch::randn({64, 12}, f64);
  torch::Tensor log_t = (torch::rand({12}, f64) * 0.5 + 0.3).log().requires_grad_(true);

  torch::Tensor loss = (weights * JumpRelu(pre, log_t.exp(), bandwidth)).sum() +
                       3.0 * JumpReluStep(pre, log_t.exp(), bandwidth).sum();
  loss.backward();
  torch::Tensor grad = log_t.grad();

  auto smoothed = [&](const torch::Tensor& lt) {
    return ((weights * SmoothedJumpRelu(pre, lt.exp(), bandwidth)).sum() +
            3.0 * SmoothedStep(pre, lt.exp(), bandwidth).sum())
        .item<double>();
  };
  const double h = 1e-6;
  int in_window = 0;
  for (int64_t j = 0; j < 12; ++j) {
    torch::Tensor up = log_t.detach().clone(), down = log_t.detach().clone();
    up[j] += h;
    down[j] -= h;
    const double fd = (smoothed(up) - smoothed(down)) / (2 * h);
    EXPECT_NEAR(grad[j].item<double>(), fd, 1e-6 * std::max(1.0, std::abs(fd))) << "latent " << j;
    if (std::abs(fd) > 0) ++in_window;
  }
  EXPECT_GT(in_window, 6);  // the check is not vacuous
  // Pre-activation gradients: H(pre - t) for JumpReLU, 0 for the step.
  torch::Tensor p = pre.clone().requires_grad_(true);
  JumpRelu(p, log_t.detach().exp(), bandwidth).sum().backward();
  EXPECT_TRUE(torch::equal(p.grad(), (pre > log_t.detach().exp()).to(torch::kDouble)));
}

TEST(SaeTrainerTest, StateRoundTripsAndContinuesIdentically) {
  at::Generator g1 = at::make_generator<at::CPUGeneratorImpl>(4);
  at::Generator g2 = at::make_generator<at::CPUGeneratorImpl>(9);
  SaeTrainerOptions o;
  o.architecture = SaeArchitecture::kBatchTopK;
  o.d_in = 8;
  o.d_sae = 32;
  o.k = 2;
  o.total_steps = 10;
  o.warmup_steps = 2;
  SaeTrainer a(o, torch::kCPU, g1);
  torch::manual_seed(0);
  std::vector<torch::Tensor> batches;
  for (int i = 0; i < 6; ++i) batches.push_back(torch::randn({16, 8}));
  for (int i = 0; i < 3; ++i) a.Step(batches[i]);
  SaeTrainer b(o, torch::kCPU, g2);  // different init, overwritten by the state
  ASSERT_TRUE(b.LoadState(a.State()).ok());
  EXPECT_EQ(b.steps_done(), 3);
  for (int i = 3; i < 6; ++i) {
    TrainStepStats sa = a.Step(batches[i]), sb = b.Step(batches[i]);
    EXPECT_DOUBLE_EQ(sa.loss, sb.loss);
  }
  EXPECT_TRUE(torch::equal(a.Model().W_dec, b.Model().W_dec));
  EXPECT_TRUE(torch::equal(a.Model().threshold, b.Model().threshold));
}

}  // namespace
}  // namespace loupe::sae
