#include "workers/sae/sae_metrics.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>

#include "gtest/gtest.h"
#include "workers/sae/sae_evaluation.h"
#include "workers/sae/sae_sources.h"
#include "workers/sae/sae_trainer.h"

namespace loupe::sae {
namespace {

TEST(Fvu, MatchesHandComputedValue) {
  // mean = (2, 0); sum ||x - mean||^2 = 1 + 1 = 2; sum ||x - x^||^2 = 1.
  torch::Tensor x = torch::tensor({{1.0f, 0.0f}, {3.0f, 0.0f}});
  torch::Tensor x_hat = torch::tensor({{1.0f, 1.0f}, {3.0f, 0.0f}});
  EXPECT_DOUBLE_EQ(Fvu(x, x_hat), 0.5);
  EXPECT_DOUBLE_EQ(Fvu(x, x), 0.0);
  // Predicting the mean explains nothing.
  EXPECT_DOUBLE_EQ(Fvu(x, x.mean(0, true).expand({2, 2})), 1.0);
  // Identical samples have no variance to explain.
  EXPECT_TRUE(std::isnan(Fvu(torch::ones({3, 2}), torch::zeros({3, 2}))));
}

TEST(Fvu, AccumulatesOverBatchesAsOneSet) {
  torch::manual_seed(3);
  torch::Tensor x = torch::randn({100, 8}) + 5;  // an offset mean exercises the centring
  torch::Tensor x_hat = x + 0.3 * torch::randn({100, 8});
  FvuAccumulator acc;
  acc.Add(x.slice(0, 0, 30), x_hat.slice(0, 0, 30));
  acc.Add(x.slice(0, 30, 100), x_hat.slice(0, 30, 100));
  EXPECT_EQ(acc.count(), 100);
  const double direct = ((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item<double>();
  EXPECT_NEAR(acc.Fvu(), direct, 1e-6);
  EXPECT_TRUE(std::isnan(FvuAccumulator().Fvu()));
}

TEST(MeanL0, CountsPositiveEntriesPerRow) {
  EXPECT_DOUBLE_EQ(MeanL0(torch::tensor({{1.0f, 0.0f}, {2.0f, 3.0f}})), 1.5);
  EXPECT_DOUBLE_EQ(MeanL0(torch::zeros({4, 3})), 0.0);
}

TEST(Mmcs, MatchesHandComputedValue) {
  // Feature (1,0) is matched exactly; (0,1) best by (1,1)/sqrt2 at cos 1/sqrt2.
  torch::Tensor truth = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}});
  torch::Tensor decoder = torch::tensor({{2.0f, 0.0f}, {1.0f, 1.0f}, {-1.0f, -0.1f}});  // rows need not be unit
  EXPECT_NEAR(Mmcs(truth, decoder), (1.0 + 1.0 / std::sqrt(2.0)) / 2.0, 1e-6);
  // A perfect dictionary, permuted and with extra rows, scores 1.
  torch::manual_seed(0);
  torch::Tensor f = torch::randn({50, 16});
  torch::Tensor dict = torch::cat({f.index_select(0, torch::randperm(50)), torch::randn({20, 16})});
  EXPECT_NEAR(Mmcs(f, dict), 1.0, 1e-6);
}

TEST(FiredMask, IgnoresZeroValues) {
  torch::Tensor idx = torch::tensor({{0, 2}, {2, 3}}, torch::kLong);
  torch::Tensor val = torch::tensor({{1.0f, 0.0f}, {0.5f, 0.0f}});
  torch::Tensor fired = FiredMask(idx, val, 5);
  EXPECT_TRUE(torch::equal(fired, torch::tensor({true, false, true, false, false})));
}

TEST(DeadLatentTracker, LatentsDieAfterWindowWithoutFiring) {
  DeadLatentTracker tracker(4, /*window_tokens=*/10, torch::kCPU);
  torch::Tensor idx = torch::tensor({{0}, {0}, {1}, {0}}, torch::kLong);  // 4 tokens, k = 1
  torch::Tensor val = torch::tensor({{1.0f}, {1.0f}, {0.0f}, {1.0f}});   // latent 1 "selected" at 0
  tracker.Update(idx, val);
  tracker.Update(idx, val);
  EXPECT_EQ(tracker.DeadCount(), 0);  // 8 tokens < window
  tracker.Update(idx, val);
  EXPECT_TRUE(torch::equal(tracker.DeadMask(), torch::tensor({false, true, true, true})));
  EXPECT_DOUBLE_EQ(tracker.DeadFraction(), 0.75);
  tracker.Update(torch::tensor({{3}}, torch::kLong), torch::tensor({{2.0f}}));  // latent 3 revives
  EXPECT_TRUE(torch::equal(tracker.DeadMask(), torch::tensor({false, true, true, false})));
}

TEST(EvaluateSae, ScoresFreshSamplesInChunksAndStopsWhenAsked) {
  SyntheticOptions o;
  o.d_model = 16;
  o.n_features = 32;
  o.firing_probability = 0.1;
  auto source = std::make_shared<SyntheticSource>(o, at::make_generator<at::CPUGeneratorImpl>(1), torch::kCPU);
  OpenedSource opened;
  opened.eval = std::make_unique<SyntheticStream>(source);
  opened.d_model = 16;
  opened.ground_truth = source->features();
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(2);
  SaeTrainerOptions to;
  to.d_in = 16;
  to.d_sae = 64;
  to.k = 4;
  const SaeModel model = SaeTrainer(to, torch::kCPU, g).Model();
  SaeEvalOptions eo;
  eo.rows = 5000;
  int checks = 0;
  absl::StatusOr<SaeEvalMetrics> m = EvaluateSae(model, opened, eo, [&] {
    ++checks;
    return absl::OkStatus();
  });
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(checks, 2);  // chunks of 4096
  EXPECT_EQ(m->rows, 5000);
  EXPECT_GT(m->fvu, 0.0);
  EXPECT_LE(m->l0, 4.0);
  EXPECT_GE(m->dead_fraction, 0.0);
  EXPECT_LT(m->dead_fraction, 1.0);
  EXPECT_TRUE(m->has_mmcs);

  absl::StatusOr<SaeEvalMetrics> cancelled =
      EvaluateSae(model, opened, eo, [] { return absl::CancelledError("job cancelled"); });
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace loupe::sae
