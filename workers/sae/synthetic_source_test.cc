#include "workers/sae/synthetic_source.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "gtest/gtest.h"

namespace loupe::sae {
namespace {

SyntheticSource Make(int64_t n, double p, double rho, uint64_t seed = 7, int64_t d = 16) {
  SyntheticOptions o;
  o.d_model = d;
  o.n_features = n;
  o.firing_probability = p;
  o.correlation = rho;
  return SyntheticSource(o, at::make_generator<at::CPUGeneratorImpl>(seed), torch::kCPU);
}

// [batch, n] 0/1 firing indicators of a batch.
torch::Tensor Indicators(const SyntheticBatch& b, int64_t batch, int64_t n) {
  torch::Tensor s = torch::zeros({batch, n});
  s.index_put_({b.sample, b.feature}, torch::ones({b.sample.size(0)}));
  return s;
}

double Correlation(const torch::Tensor& a, const torch::Tensor& b) {
  torch::Tensor ac = a - a.mean(), bc = b - b.mean();
  return ((ac * bc).sum() / (ac.norm() * bc.norm())).item<double>();
}

TEST(SyntheticSource, SamplesAreSumsOfUnitFeatureDirections) {
  SyntheticSource src = Make(100, 0.05, 0.0);
  EXPECT_EQ(src.features().sizes(), (std::vector<int64_t>{100, 16}));
  EXPECT_TRUE(torch::allclose(src.features().norm(2, 1), torch::ones({100})));
  SyntheticBatch b = src.SampleWithCodes(500);
  EXPECT_EQ(b.x.sizes(), (std::vector<int64_t>{500, 16}));
  EXPECT_GE(b.magnitude.min().item<float>(), SyntheticSource::kMinMagnitude);
  EXPECT_LT(b.magnitude.max().item<float>(), SyntheticSource::kMaxMagnitude);
  torch::Tensor rebuilt = torch::zeros({500, 16});
  for (int64_t e = 0; e < b.sample.size(0); ++e) {
    rebuilt[b.sample[e].item<int64_t>()] += b.magnitude[e] * src.features()[b.feature[e].item<int64_t>()];
  }
  EXPECT_TRUE(torch::allclose(rebuilt, b.x, 1e-5, 1e-5));
  // No feature fires twice in one sample.
  torch::Tensor key = b.sample * 100 + b.feature;
  EXPECT_EQ(std::get<0>(torch::_unique(key)).size(0), key.size(0));
}

TEST(SyntheticSource, IsDeterministicPerSeed) {
  SyntheticSource a = Make(64, 0.1, 0.3, 11), b = Make(64, 0.1, 0.3, 11), c = Make(64, 0.1, 0.3, 12);
  EXPECT_TRUE(torch::equal(a.features(), b.features()));
  EXPECT_TRUE(torch::equal(a.Sample(32), b.Sample(32)));
  EXPECT_FALSE(torch::equal(a.features(), c.features()));
}

TEST(SyntheticSource, FiresEachFeatureWithProbabilityP) {
  for (double rho : {0.0, 0.6}) {
    SCOPED_TRACE(rho);
    // 20 features: one full group of 16 and a partial one of 4.
    const int64_t n = 20, batch = 40000;
    SyntheticSource src = Make(n, 0.05, rho);
    torch::Tensor s = Indicators(src.SampleWithCodes(batch), batch, n);
    torch::Tensor rate = s.mean(0);
    EXPECT_NEAR(rate.mean().item<double>(), 0.05, 0.003);
    EXPECT_GT(rate.min().item<double>(), 0.04);
    EXPECT_LT(rate.max().item<double>(), 0.06);
  }
}

TEST(SyntheticSource, CorrelatesFiringsWithinGroupsOnly) {
  const int64_t n = 32, batch = 40000;  // two groups: 0..15, 16..31
  torch::Tensor indep = Indicators(Make(n, 0.05, 0.0).SampleWithCodes(batch), batch, n);
  torch::Tensor corr = Indicators(Make(n, 0.05, 0.6).SampleWithCodes(batch), batch, n);
  EXPECT_LT(std::abs(Correlation(indep.select(1, 0), indep.select(1, 1))), 0.03);
  EXPECT_GT(Correlation(corr.select(1, 0), corr.select(1, 1)), 0.15);     // same group
  EXPECT_GT(Correlation(corr.select(1, 17), corr.select(1, 30)), 0.15);   // same group
  EXPECT_LT(std::abs(Correlation(corr.select(1, 0), corr.select(1, 16))), 0.03);  // across groups

  // rho = 1: a group fires all at once or not at all.
  const int64_t b = 2000;
  torch::Tensor all = Indicators(Make(n, 0.1, 1.0).SampleWithCodes(b), b, n);
  torch::Tensor per_group = all.view({b, 2, 16}).sum(2);
  EXPECT_TRUE(((per_group == 0) | (per_group == 16)).all().item<bool>());
  EXPECT_GT(per_group.sum().item<double>(), 0);
}

}  // namespace
}  // namespace loupe::sae
