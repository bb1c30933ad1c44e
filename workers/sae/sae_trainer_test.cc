#include "workers/sae/sae_trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "workers/sae/geometric_median.h"
#include "workers/sae/jumprelu.h"
#include "workers/sae/gathered_linear.h"
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

TEST(GeometricMedian, FindsTheFermatPointOfATriangle) {
  // All angles < 120°, so the median is the Fermat point, where the unit
  // vectors to the vertices are 120° apart. Reference: 10^5 Weiszfeld steps
  // in numpy float64.
  torch::Tensor pts = torch::tensor({{0.0, 0.0}, {4.0, 0.0}, {1.0, 3.0}}, torch::kDouble);
  torch::Tensor m = GeometricMedian(pts);
  EXPECT_NEAR(m[0].item<double>(), 1.3021694792519622, 1e-5);
  EXPECT_NEAR(m[1].item<double>(), 1.0467457811220569, 1e-5);
  torch::Tensor u = pts - m;
  u = u / u.norm(2, 1, true);
  torch::Tensor cos = torch::mm(u, u.t());
  EXPECT_NEAR(cos[0][1].item<double>(), -0.5, 1e-4);
  EXPECT_NEAR(cos[1][2].item<double>(), -0.5, 1e-4);
}

TEST(GeometricMedian, IsTheMedianOnALineAndIgnoresOutliers) {
  // Collinear points: the 1-D median (a data point, where Weiszfeld's
  // weights are singular).
  torch::Tensor line = torch::tensor({{0.f, 5.f}, {1.f, 5.f}, {2.f, 5.f}, {3.f, 5.f}, {100.f, 5.f}});
  torch::Tensor m = GeometricMedian(line);
  EXPECT_EQ(m.scalar_type(), torch::kFloat);
  EXPECT_NEAR(m[0].item<float>(), 2.0f, 1e-3);
  EXPECT_NEAR(m[1].item<float>(), 5.0f, 1e-5);

  // A symmetric cloud around (1, -1) plus 5% far outliers: the mean moves
  // ~50 away, the median stays within the cloud.
  torch::manual_seed(0);
  torch::Tensor cloud = torch::randn({950, 2}) * 0.1 + torch::tensor({1.0f, -1.0f});
  torch::Tensor outliers = torch::full({50, 2}, 1000.0f);
  torch::Tensor all = torch::cat({cloud, outliers});
  EXPECT_GT((all.mean(0) - torch::tensor({1.0f, -1.0f})).norm().item<float>(), 40.0f);
  EXPECT_LT((GeometricMedian(all) - torch::tensor({1.0f, -1.0f})).norm().item<float>(), 0.05f);

  EXPECT_TRUE(torch::equal(GeometricMedian(torch::full({4, 3}, 2.5f)), torch::full({3}, 2.5f)));
}

TEST(GatheredLinearTest, GradientsMatchTheDenseComputation) {
  torch::manual_seed(7);
  const int64_t n = 9, d = 5, m = 12;
  const torch::Tensor x0 = torch::randn({n, d}), w0 = torch::randn({d, m}), b0 = torch::randn({m});
  const torch::Tensor t0 = torch::randn({m, d}), c = torch::randn({20});
  // 20 entries, rows ascending, row 4 and the last row without any, one
  // latent picked twice in a row.
  torch::Tensor rows = std::get<0>(torch::cat({torch::randint(0, 4, {10}), torch::randint(5, n - 1, {10})}).sort());
  torch::Tensor cols = torch::randint(m, {20});
  cols[1] = cols[0], rows[1] = rows[0];
  torch::Tensor dense_grads[4], gathered_grads[4];
  for (int which = 0; which < 2; ++which) {
    torch::Tensor x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true),
                  b = b0.clone().requires_grad_(true), table = t0.clone().requires_grad_(true);
    torch::Tensor picked, decoded;
    if (which == 0) {
      picked = torch::addmm(b, x, w).index({rows, cols});
      torch::Tensor z = torch::zeros({n, m}).index_put({rows, cols}, picked.tanh(), /*accumulate=*/true);
      decoded = torch::mm(z, table);
    } else {
      torch::Tensor pre;
      {
        torch::NoGradGuard ng;
        pre = torch::addmm(b, x, w);
      }
      picked = GatheredLinear(pre, b, x, w.t().contiguous(), rows, cols);
      decoded = SumRowsOfTable(table, rows, cols, picked.tanh(), n);
    }
    ((picked * c).sum() + decoded.pow(2).sum()).backward();
    torch::Tensor* out = which == 0 ? dense_grads : gathered_grads;
    out[0] = b.grad(), out[1] = x.grad(), out[2] = w.grad(), out[3] = table.grad();
  }
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(torch::allclose(dense_grads[i], gathered_grads[i], 1e-4, 1e-5)) << i;
  }
}

TEST(SaeTrainerTest, InitialisesEncoderAsDecoderTransposeWithUnitRows) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
  SaeTrainerOptions o;
  o.d_in = 8;
  o.d_sae = 32;
  o.k = 4;
  const SaeModel m = SaeTrainer(o, torch::kCPU, g).Model();
  EXPECT_EQ(m.W_enc.sizes(), (std::vector<int64_t>{8, 32}));
  EXPECT_EQ(m.W_dec.sizes(), (std::vector<int64_t>{32, 8}));
  EXPECT_TRUE(torch::allclose(m.W_dec.norm(2, 1), torch::ones({32})));
  EXPECT_TRUE(torch::equal(m.W_enc, m.W_dec.t()));
  EXPECT_TRUE(torch::equal(m.b_enc, torch::zeros({32})));
}

TEST(SaeTrainerTest, WarmsUpHoldsAndDecaysTheLearningRate) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(4);
  SaeTrainerOptions o;
  o.d_in = 4;
  o.d_sae = 8;
  o.k = 2;
  o.lr = 1.0;
  o.warmup_steps = 10;
  o.total_steps = 100;  // decay over the last 20 steps
  SaeTrainer t(o, torch::kCPU, g);
  EXPECT_DOUBLE_EQ(t.LearningRate(1), 0.1);
  EXPECT_DOUBLE_EQ(t.LearningRate(10), 1.0);
  EXPECT_DOUBLE_EQ(t.LearningRate(80), 1.0);
  EXPECT_DOUBLE_EQ(t.LearningRate(81), 1.0);
  EXPECT_DOUBLE_EQ(t.LearningRate(91), 0.5);
  EXPECT_DOUBLE_EQ(t.LearningRate(100), 0.05);
}

TEST(SaeTrainerTest, KeepsDecoderRowsUnitNormAndReducesTheLoss) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  torch::manual_seed(5);
  torch::Tensor basis = torch::randn({16, 8});
  auto batch = [&] { return torch::mm(torch::relu(torch::randn({64, 16}) - 1.0), basis); };
  for (SaeArchitecture arch : {SaeArchitecture::kTopK, SaeArchitecture::kBatchTopK}) {
    SCOPED_TRACE(ArchitectureName(arch));
    SaeTrainerOptions o;
    o.architecture = arch;
    o.d_in = 8;
    o.d_sae = 32;
    o.k = 4;
    o.lr = 1e-2;
    o.warmup_steps = 5;
    o.total_steps = 150;
    o.dead_window_tokens = 256;
    SaeTrainer t(o, torch::kCPU, g);
    t.InitDecoderBias(batch());
    TrainStepStats first = t.Step(batch()), last;
    for (int i = 1; i < o.total_steps; ++i) last = t.Step(batch());
    EXPECT_EQ(last.step, 150);
    EXPECT_LT(last.fvu, first.fvu);
    EXPECT_LE(last.l0, 4.0 + 1e-9);
    torch::Tensor norms = t.W_dec().detach().norm(2, 1);
    EXPECT_LT((norms - 1).abs().max().item<float>(), 1e-5);
  }
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
