#include "workers/sae/topk_sae.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "gtest/gtest.h"
#include "workers/sae/geometric_median.h"
#include "workers/sae/topk_trainer.h"

namespace loupe::sae {
namespace {

at::Generator Gen(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

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

TEST(TopKSae, InitialisesEncoderAsDecoderTransposeWithUnitRows) {
  at::Generator g = Gen(1);
  TopKSae sae(8, 32, 4, torch::kCPU, g);
  EXPECT_EQ(sae.W_enc().sizes(), (std::vector<int64_t>{8, 32}));
  EXPECT_EQ(sae.W_dec().sizes(), (std::vector<int64_t>{32, 8}));
  EXPECT_TRUE(torch::allclose(sae.W_dec().norm(2, 1), torch::ones({32})));
  EXPECT_TRUE(torch::equal(sae.W_enc(), sae.W_dec().t()));
  EXPECT_TRUE(torch::equal(sae.b_enc(), torch::zeros({32})));
}

TEST(TopKSae, EncodeAndDecodeMatchTheDenseFormulas) {
  at::Generator g = Gen(2);
  TopKSae sae(8, 32, 4, torch::kCPU, g);
  torch::manual_seed(2);
  {
    torch::NoGradGuard no_grad;
    sae.b_enc().copy_(torch::randn({32}) * 0.1);
    sae.b_dec().copy_(torch::randn({8}));
  }
  torch::Tensor x = torch::randn({5, 8});
  TopKCode code = sae.Encode(x);
  torch::NoGradGuard no_grad;
  torch::Tensor pre = torch::mm(x - sae.b_dec(), sae.W_enc()) + sae.b_enc();
  EXPECT_TRUE(torch::allclose(code.pre, pre, 1e-5, 1e-5));
  torch::Tensor dense = torch::zeros({5, 32}).scatter(1, code.indices, code.values);
  // The k kept values are the k largest ReLU'd pre-activations.
  torch::Tensor expected_top = std::get<0>(torch::relu(pre).topk(4, 1)).sum(1);
  EXPECT_TRUE(torch::allclose(dense.sum(1), expected_top, 1e-5, 1e-5));
  EXPECT_GE(code.values.min().item<float>(), 0.0f);
  EXPECT_TRUE(torch::allclose(sae.Decode(code.values, code.indices),
                              torch::mm(dense, sae.W_dec()) + sae.b_dec(), 1e-5, 1e-5));
}

TEST(TopKSae, ParallelDecoderGradientIsRemoved) {
  at::Generator g = Gen(3);
  TopKSae sae(8, 16, 2, torch::kCPU, g);
  TopKCode code = sae.Encode(torch::randn({10, 8}));
  sae.Decode(code.values, code.indices).pow(2).sum().backward();
  ASSERT_GT(sae.W_dec().grad().abs().sum().item<float>(), 0);
  sae.RemoveParallelDecoderGrad();
  torch::Tensor along = (sae.W_dec().grad() * sae.W_dec()).sum(1);
  EXPECT_LT(along.abs().max().item<float>(), 1e-5);
}

TEST(TopKSae, FromWeightsChecksShapes) {
  auto ok = TopKSae::FromWeights(torch::zeros({8, 32}), torch::zeros({32}), torch::zeros({32, 8}),
                                 torch::zeros({8}), 4);
  EXPECT_TRUE(ok.ok()) << ok.status();
  auto bad = TopKSae::FromWeights(torch::zeros({8, 31}), torch::zeros({32}), torch::zeros({32, 8}),
                                  torch::zeros({8}), 4);
  EXPECT_EQ(bad.status().message(), "W_enc must be [8, 32] for d_in 8, d_sae 32; got [8, 31]");
  EXPECT_FALSE(TopKSae::FromWeights(torch::zeros({8, 32}), torch::zeros({32}), torch::zeros({32, 8}),
                                    torch::zeros({8}), 33)
                   .ok());
}

TEST(TopKTrainer, WarmsUpHoldsAndDecaysTheLearningRate) {
  at::Generator g = Gen(4);
  TopKSae sae(4, 8, 2, torch::kCPU, g);
  TrainerOptions o;
  o.lr = 1.0;
  o.warmup_steps = 10;
  o.total_steps = 100;  // decay over the last 20 steps
  TopKTrainer t(&sae, o);
  EXPECT_DOUBLE_EQ(t.LearningRate(1), 0.1);
  EXPECT_DOUBLE_EQ(t.LearningRate(10), 1.0);
  EXPECT_DOUBLE_EQ(t.LearningRate(80), 1.0);
  EXPECT_DOUBLE_EQ(t.LearningRate(81), 1.0);
  EXPECT_DOUBLE_EQ(t.LearningRate(91), 0.5);
  EXPECT_DOUBLE_EQ(t.LearningRate(100), 0.05);
}

TEST(TopKTrainer, KeepsDecoderRowsUnitNormAndReducesTheLoss) {
  at::Generator g = Gen(5);
  torch::manual_seed(5);
  torch::Tensor basis = torch::randn({16, 8});
  auto batch = [&] { return torch::mm(torch::relu(torch::randn({64, 16}) - 1.0), basis); };
  TopKSae sae(8, 32, 4, torch::kCPU, g);
  sae.InitDecoderBias(batch());
  TrainerOptions o;
  o.lr = 1e-2;
  o.warmup_steps = 5;
  o.total_steps = 150;
  o.dead_window_tokens = 256;
  TopKTrainer t(&sae, o);
  StepStats first = t.Step(batch()), last;
  for (int i = 1; i < o.total_steps; ++i) last = t.Step(batch());
  EXPECT_EQ(last.step, 150);
  EXPECT_LT(last.fvu, first.fvu);
  EXPECT_LE(last.l0, 4.0);
  torch::Tensor norms = sae.W_dec().detach().norm(2, 1);
  EXPECT_LT((norms - 1).abs().max().item<float>(), 1e-5);
}

}  // namespace
}  // namespace loupe::sae
