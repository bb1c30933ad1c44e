// The analyses' building blocks against independent references: closed-form
// or hand-computed values, planted structure in synthetic data.
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "workers/dark_matter/array_file.h"
#include "workers/dark_matter/decomposition.h"
#include "workers/dark_matter/error_sae.h"
#include "workers/dark_matter/pursuit.h"
#include "workers/dark_matter/regression.h"
#include "workers/dark_matter/sae_handle.h"
#include "workers/dark_matter/scaling.h"

namespace loupe::dark_matter {
namespace {

class PiecesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);
    torch::manual_seed(3);
  }
};

// A random TopK SAE on d dims with unit decoder rows.
SaeHandle RandomSae(int64_t d, int64_t d_sae, int64_t k) {
  torch::Tensor W_dec = torch::randn({d_sae, d});
  W_dec = W_dec / W_dec.norm(2, 1, true);
  return TopKHandle("random", W_dec.t().clone(), torch::zeros({d_sae}), W_dec, 0.1 * torch::randn({d}), k);
}

TEST_F(PiecesTest, SplitIsAPermutation) {
  Split s = RandomSplit(101, 0.5, 9);
  EXPECT_EQ(s.train.numel(), 51);  // llround(50.5)
  EXPECT_EQ(s.test.numel(), 50);
  torch::Tensor all = std::get<0>(torch::cat({s.train, s.test}).sort());
  EXPECT_TRUE(all.equal(torch::arange(101)));
  EXPECT_TRUE(RandomSplit(101, 0.5, 9).train.equal(s.train)) << "seeded";
}

TEST_F(PiecesTest, LeastSquaresMatchesNormalEquationsAndHandlesRankDeficiency) {
  torch::Tensor X = torch::randn({200, 5}, torch::kFloat64);
  torch::Tensor Y = torch::randn({200, 3}, torch::kFloat64);
  torch::Tensor want = torch::linalg_solve(X.t().matmul(X), X.t().matmul(Y));
  EXPECT_TRUE(torch::allclose(LeastSquares(X, Y).to(torch::kFloat64), want, 1e-5, 1e-6));
  // A duplicated column: the minimum-norm solution splits the weight evenly.
  torch::Tensor x = torch::randn({100, 1}, torch::kFloat64);
  torch::Tensor W = LeastSquares(torch::cat({x, x}, 1), 2 * x);
  EXPECT_NEAR(W[0][0].item<double>(), 1.0, 1e-5);
  EXPECT_NEAR(W[1][0].item<double>(), 1.0, 1e-5);
}

TEST_F(PiecesTest, R2IsPerDimensionThenAveraged) {
  // Dimension 0 predicted perfectly (R² 1), dimension 1 by its mean (R² 0),
  // dimension 2 constant (skipped): mean 0.5, not the pooled R².
  torch::Tensor y = torch::tensor({{1.0, 10.0, 5.0}, {2.0, 20.0, 5.0}, {3.0, 60.0, 5.0}}, torch::kFloat64);
  torch::Tensor pred = y.clone();
  pred.select(1, 1).fill_(30.0);
  EXPECT_NEAR(R2PerDimensionMean(y, pred), 0.5, 1e-12);
  // Hand computation of one dimension: y = (1, 2, 4), ŷ = (1, 3, 3):
  // SS_res = 0 + 1 + 1 = 2, mean 7/3, SS_tot = 16/9 + 1/9 + 25/9 = 42/9.
  EXPECT_NEAR(R2PerDimensionMean(torch::tensor({1.0, 2.0, 4.0}), torch::tensor({1.0, 3.0, 3.0})), 1 - 2 / (42.0 / 9),
              1e-6);
}

TEST_F(PiecesTest, PartsAddUpToXToFloatPrecision) {
  const int64_t n = 2000, d = 24;
  torch::Tensor x = torch::randn({n, d}) * 3 + 1;
  SaeHandle sae = RandomSae(d, 96, 6);
  torch::Tensor x_hat = sae.Reconstruct(x);
  Split split = RandomSplit(n, 0.5, 1);
  Decomposition dec = Decompose(x, x_hat, split);
  torch::Tensor sum = x_hat + dec.linear + dec.nonlinear;
  const double tol = 8 * std::numeric_limits<float>::epsilon() * x.abs().max().item<double>();
  EXPECT_LE((x - sum).abs().max().item<double>(), tol);
  DecompositionStats s = DecompositionStatistics(x, x_hat, sae.L0(x), dec, split);
  EXPECT_LE(s.max_identity_error, tol);
  // On the training rows the OLS residual is orthogonal to the fit, so the
  // squared norms add up.
  torch::Tensor tr = split.train;
  const double e2 = SquaredNorms(dec.error.index_select(0, tr)).sum().item<double>();
  const double l2 = SquaredNorms(dec.linear.index_select(0, tr)).sum().item<double>();
  const double n2 = SquaredNorms(dec.nonlinear.index_select(0, tr)).sum().item<double>();
  EXPECT_NEAR(l2 + n2, e2, 1e-4 * e2);
  EXPECT_NEAR(s.l0, 6.0, 1e-9);
}

TEST_F(PiecesTest, PlantedLinearErrorIsRecovered) {
  // x̂ = x − (x A + ε): the error's linear part is x A, ε is independent of
  // x. W* must find A, and the linear share of the error variance must be
  // var(xA) / (var(xA) + var(ε)) — here 0.8 per dimension.
  const int64_t n = 20000, d = 16;
  torch::Tensor x = torch::randn({n, d});
  torch::Tensor A = torch::randn({d, d}) / std::sqrt(static_cast<double>(d));
  // Scale each column of A so var((xA)_j) = 1 exactly in expectation.
  A = A / A.norm(2, 0, true);
  torch::Tensor eps = 0.5 * torch::randn({n, d});  // variance 0.25 → R² = 1 / 1.25
  torch::Tensor x_hat = x - (x.matmul(A) + eps);
  Split split = RandomSplit(n, 0.5, 2);
  Decomposition dec = Decompose(x, x_hat, split);
  EXPECT_LT((dec.W - A).abs().max().item<double>(), 0.03);
  DecompositionStats s = DecompositionStatistics(x, x_hat, torch::zeros({n}), dec, split);
  EXPECT_NEAR(s.linear_error_r2, 0.8, 0.02);
  EXPECT_NEAR(s.linear_norm_share, 0.8, 0.02);
  // The nonlinear part is ε: nothing of it is linear in x.
  EXPECT_LT(FitHeldOut(x, dec.nonlinear, split).r2, 0.01);
}

TEST_F(PiecesTest, NormPredictionAndBaselines) {
  // ||e||² = 2 + x_0 exactly linear in [x, 1] (R² 1 with intercept); the
  // token-id baseline sees a per-token offset.
  const int64_t n = 4000, d = 4;
  torch::Tensor ids = torch::randint(0, 5, {n}, torch::kInt64);
  torch::Tensor x = torch::randn({n, d});
  torch::Tensor mag = (2 + x.select(1, 0) + ids.to(torch::kFloat32)).clamp_min(0.01).sqrt();
  torch::Tensor e = torch::zeros({n, d});
  e.select(1, 1).copy_(mag);
  Split split = RandomSplit(n, 0.5, 3);
  NormBaselines b = ErrorNormBaselines(x, e, torch::full({n}, 3.0), ids, split);
  EXPECT_GT(b.token_id_mean, 0.5);
  EXPECT_NEAR(b.token_ids_seen, 1.0, 1e-12);
  EXPECT_LT(b.from_l0, 1e-3) << "a constant L0 predicts nothing";
  // The reference token-id R²: var explained by the id means is var(id) / (var(id) + var(x0)) = 2 / 3.
  EXPECT_NEAR(b.token_id_mean, 2.0 / 3.0, 0.05);
}

TEST_F(PiecesTest, PowerLawRecoversItsParameters) {
  std::vector<double> w = {256, 512, 1024, 2048, 4096, 8192};
  std::vector<double> f;
  for (double x : w) f.push_back(0.12 + 3.0 * std::pow(x, -0.5));
  PowerLawFit fit = FitPowerLaw(w, f);
  ASSERT_TRUE(fit.ok);
  EXPECT_NEAR(fit.c, 0.12, 1e-4);
  EXPECT_NEAR(fit.a, 3.0, 1e-2);
  EXPECT_NEAR(fit.m, -0.5, 1e-3);
  std::vector<FvuSplit> parts = SplitFvu(fit, w, f, std::vector<double>(w.size(), 0.05));
  EXPECT_NEAR(parts[0].absent_features + parts[0].linear_error + parts[0].nonlinear_error, f[0], 1e-4);
  EXPECT_NEAR(parts[0].nonlinear_error, 0.05, 1e-12);
  EXPECT_FALSE(FitPowerLaw({1, 2}, {0.5, 0.4}).ok);
}

TEST_F(PiecesTest, PerTokenScalingSeesTheNonlinearNorm) {
  // ||e_wide|| = 0.5 ||e_narrow|| + 0.5 ||nl_narrow|| exactly: adding the
  // nonlinear norm must explain all the remaining variance (100%).
  const int64_t n = 3000;
  torch::Tensor a = torch::rand({n}) + 1, b = torch::rand({n});
  Split split = RandomSplit(n, 0.5, 4);
  PairScaling s = PredictWiderErrorNorm(a, b, 0.5 * a + 0.5 * b, split);
  EXPECT_LT(s.r2, 0.95);
  EXPECT_NEAR(s.r2_with_nonlinear, 1.0, 1e-9);
  EXPECT_NEAR(s.extra_variance_explained_pct, 100.0, 1e-6);
}

TEST_F(PiecesTest, RefiningOnTheEncoderSupportNeverIncreasesError) {
  const int64_t n = 500, d = 32;
  SaeHandle sae = RandomSae(d, 128, 8);
  torch::Tensor x = torch::randn({n, d}) * 2;
  torch::Tensor codes = sae.Encode(x);
  auto row_err = [&](const torch::Tensor& w) { return (x - sae.Decode(w, x)).pow(2).sum(1); };
  torch::Tensor start = row_err(codes);
  torch::Tensor prev = start;
  for (int it : {1, 2, 5, 20}) {
    torch::Tensor w = RefineOnSupport(x, sae.W_dec(), sae.b_dec(), codes, it);
    EXPECT_FALSE(((w > 0) & (codes <= 0)).any().item<bool>()) << "support kept";
    EXPECT_GE(w.min().item<double>(), 0.0);
    torch::Tensor err = row_err(w);
    EXPECT_TRUE((err <= start * (1 + 1e-5) + 1e-6).all().item<bool>()) << it << " iterations";
    EXPECT_TRUE((err <= prev * (1 + 1e-5) + 1e-6).all().item<bool>()) << it << " iterations";
    prev = err;
  }
  EXPECT_LT(prev.sum().item<double>(), 0.9 * start.sum().item<double>()) << "a random encoder is far from optimal";
}

TEST_F(PiecesTest, GradientPursuitKeepsEachTokensL0AndFindsSparseCodes) {
  // Orthonormal dictionary, exactly sparse non-negative codes: pursuit with
  // the true L0 recovers them.
  const int64_t d = 16, n = 64;
  torch::Tensor Q = std::get<0>(torch::linalg_qr(torch::randn({d, d})));
  torch::Tensor D = Q.t().contiguous();  // 16 orthonormal rows
  torch::Tensor w_true = torch::zeros({n, d});
  torch::Tensor l0 = torch::randint(1, 5, {n}, torch::kInt64);
  for (int64_t i = 0; i < n; ++i) {
    torch::Tensor idx = torch::randperm(d).slice(0, 0, l0[i].item<int64_t>());
    w_true[i].index_put_({idx}, torch::rand({idx.numel()}) + 0.5);
  }
  torch::Tensor b = torch::randn({d});
  torch::Tensor x = w_true.matmul(D) + b;
  torch::Tensor w = GradientPursuit(x, D, b, l0, 16);
  EXPECT_GE(w.min().item<double>(), 0.0);
  EXPECT_TRUE(((w != 0).sum(1) <= l0).all().item<bool>());
  EXPECT_TRUE(torch::allclose(w, w_true, 1e-4, 1e-4));
  // With a generic dictionary the L0 bound still holds.
  SaeHandle sae = RandomSae(d, 64, 4);
  torch::Tensor xr = torch::randn({n, d});
  torch::Tensor target = (sae.Encode(xr) > 0).sum(1);
  torch::Tensor wg = GradientPursuit(xr, sae.W_dec(), sae.b_dec(), target, 10);
  EXPECT_TRUE(((wg != 0).sum(1) <= target).all().item<bool>());
  EXPECT_GE(wg.min().item<double>(), 0.0);
}

TEST_F(PiecesTest, SaeEncodersFollowTheirArchitecture) {
  SaeHandle s = RandomSae(8, 32, 3);
  torch::Tensor x = torch::randn({10, 8});
  torch::Tensor pre = (x - s.model.b_dec).matmul(s.model.W_enc) + s.model.b_enc;
  EXPECT_TRUE(((s.Encode(x) > 0).sum(1) <= 3).all().item<bool>());
  s.model.architecture = sae::SaeArchitecture::kRelu;
  EXPECT_TRUE(torch::allclose(s.Encode(x), torch::relu(pre)));
  s.model.architecture = sae::SaeArchitecture::kJumpRelu;
  s.model.threshold = torch::full({32}, 0.3);
  EXPECT_TRUE(torch::allclose(s.Encode(x), torch::relu(pre) * (pre > 0.3).to(torch::kFloat32)));
}

TEST_F(PiecesTest, ErrorSaeLearnsASparseTarget) {
  // Rows that are exactly 2-sparse in 32 directions: a TopK-2 SAE with 64
  // latents gets most of the variance, and reports L0 <= k.
  const int64_t n = 4096, d = 16, f = 32;
  torch::Tensor dirs = torch::randn({f, d});
  dirs = dirs / dirs.norm(2, 1, true);
  torch::Tensor codes = torch::zeros({n, f});
  codes.scatter_(1, torch::randint(0, f, {n, 2}, torch::kInt64), torch::rand({n, 2}) + 0.5);
  torch::Tensor rows = codes.matmul(dirs);
  ErrorSaeOptions o;
  o.d_sae = 64;
  o.k = 2;
  o.steps = 400;
  o.batch_size = 128;
  o.lr = 3e-3;
  auto r = TrainErrorSae(rows.slice(0, 0, 3072), rows.slice(0, 3072), o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(r->fvu, 0.5);
  EXPECT_LE(r->l0, 2.0);
  ErrorSaeOptions bad;
  bad.d_sae = 4;
  bad.k = 5;
  EXPECT_FALSE(TrainErrorSae(rows, rows, bad).ok());
}

void WriteNpy(const std::string& path, const std::string& descr, const std::string& shape, const void* data,
              size_t bytes) {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write(reinterpret_cast<const char*>(&len), 2);
  out << header;
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
}

TEST_F(PiecesTest, ReadsNpyArrays) {
  const std::string dir = ::testing::TempDir();
  const float vals[6] = {1, 2, 3, 4, 5, 6};
  WriteNpy(dir + "/a.npy", "<f4", "(2, 3)", vals, sizeof(vals));
  auto t = ReadArrayFile(dir + "/a.npy", "activations");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->equal(torch::tensor({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}).reshape({2, 3})));
  const int64_t ids[3] = {7, 8, 9};
  WriteNpy(dir + "/i.npy", "<i8", "(3,)", ids, sizeof(ids));
  auto i = ReadArrayFile(dir + "/i.npy", "token_ids");
  ASSERT_TRUE(i.ok()) << i.status();
  EXPECT_TRUE(i->equal(torch::tensor({7, 8, 9}, torch::kInt64)));
  WriteNpy(dir + "/b.npy", ">f4", "(1,)", vals, 4);
  auto bad = ReadArrayFile(dir + "/b.npy", "activations");
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(">f4"), std::string::npos) << bad.status();
  EXPECT_FALSE(ReadArrayFile(dir + "/missing.npy", "x").ok());
}

}  // namespace
}  // namespace loupe::dark_matter
