// Correctness of the parser and the estimators against XGBoost itself:
// margins, structure-frozen refits (XGBoost's refresh updater), real
// retraining, and finite differences in a training row's weight.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "workers/gbdt/ensemble.h"
#include "workers/gbdt/evaluation.h"
#include "workers/gbdt/explain.h"
#include "workers/gbdt/gbdt_test_util.h"
#include "workers/gbdt/replay.h"
#include "workers/gbdt/xgb.h"

namespace loupe::gbdt {
namespace {

using testing::Synthetic;

struct Fitted {
  Table train, test;
  TrainOptions opts;
  std::unique_ptr<Booster> booster;
  Ensemble model;
  ExplainInput In() const {
    ExplainInput in;
    in.model = &model;
    in.train = &train;
    in.test = &test;
    in.hyper = {opts.learning_rate, opts.reg_lambda, opts.min_child_weight};
    in.retrain = opts;
    in.threads = 2;
    return in;
  }
};

TrainOptions Options(const std::string& kind, int64_t rounds, int64_t depth, double lr) {
  TrainOptions o;
  o.objective = kind == "regression" ? "reg:squarederror" : kind == "binary" ? "binary:logistic" : "multi:softprob";
  o.num_class = kind == "multiclass" ? 3 : 0;
  o.n_estimators = rounds;
  o.max_depth = depth;
  o.learning_rate = lr;
  o.threads = 1;
  return o;
}

std::unique_ptr<Fitted> Fit(const std::string& kind, int64_t n, int64_t rounds, int64_t depth, double lr,
                            const std::string& tree_method = "hist") {
  auto f = std::make_unique<Fitted>();
  f->train = Synthetic(n, 4, kind, 11);
  f->test = Synthetic(25, 4, kind, 12);
  f->opts = Options(kind, rounds, depth, lr);
  f->opts.tree_method = tree_method;
  auto b = Booster::Train(f->train, f->opts);
  EXPECT_TRUE(b.ok()) << b.status();
  f->booster = std::move(*b);
  auto json = f->booster->SaveJson();
  auto model = ParseXgboostJson(*json, "model");
  EXPECT_TRUE(model.ok()) << model.status();
  f->model = std::move(*model);
  return f;
}

std::vector<double> Losses(const Booster& b, const Fitted& f) {
  auto m = b.PredictMargin(f.test);
  EXPECT_TRUE(m.ok()) << m.status();
  return RowLosses(f.model.loss, *m, f.test.y);
}

class PerObjective : public ::testing::TestWithParam<std::string> {};

TEST_P(PerObjective, ParsedTreesReproduceXgboostMarginsAndLeafValues) {
  auto f = Fit(GetParam(), 300, 30, 5, 0.3);
  for (const Table* t : {&f->train, &f->test}) {
    auto ref = f->booster->PredictMargin(*t);
    ASSERT_TRUE(ref.ok());
    std::vector<double> m(static_cast<size_t>(f->model.K()));
    for (int64_t i = 0; i < t->rows; ++i) {
      f->model.Margin(t->row(i), m.data());
      for (int c = 0; c < f->model.K(); ++c) EXPECT_NEAR(m[c], (*ref)[i * f->model.K() + c], 1e-5) << i;
    }
  }
  const RowsPass replay = ReplayRows(f->model, f->train, 2);
  EXPECT_LT(MaxLeafValueError(f->model, ComputeLeafStats(f->model, replay), f->In().hyper), 1e-5);
}

// LeafRefit against XGBoost's own structure-frozen refit: the refresh
// updater re-estimating every leaf in round order with row i's weight 0.
TEST_P(PerObjective, LeafRefitEqualsXgboostRefreshWithoutTheRow) {
  auto f = Fit(GetParam(), 80, 8, 3, 0.3);
  auto refit = LeafRefit(f->In());
  ASSERT_TRUE(refit.ok()) << refit.status();
  const std::vector<double> base = Losses(*f->booster, *f);
  for (int64_t i : {0, 17, 79}) {
    auto copy = Booster::FromJson(*f->booster->SaveJson(), 1);
    ASSERT_TRUE(copy.ok());
    std::vector<float> w(static_cast<size_t>(f->train.rows), 1.0f);
    w[static_cast<size_t>(i)] = 0;
    ASSERT_TRUE((*copy)->RefreshLeaves(f->train, w, f->opts).ok());
    const std::vector<double> after = Losses(**copy, *f);
    for (int64_t e = 0; e < f->test.rows; ++e) EXPECT_NEAR(refit->at(i, e), after[e] - base[e], 2e-5) << i << "," << e;
  }
}

// LeafInfluence (all rows updated) is the exact derivative of the
// structure-frozen refit: compare with central differences of XGBoost's
// refresh in row i's weight.
TEST_P(PerObjective, LeafInfluenceEqualsFiniteDifferenceOfFrozenRefit) {
  auto f = Fit(GetParam(), 80, 6, 3, 0.3);
  auto li = LeafInfluence(f->In(), -1);
  ASSERT_TRUE(li.ok()) << li.status();
  const float eps = 1e-2f;
  for (int64_t i : {3, 40}) {
    std::vector<std::vector<double>> losses;
    for (float w_i : {1 + eps, 1 - eps}) {
      auto copy = Booster::FromJson(*f->booster->SaveJson(), 1);
      std::vector<float> w(static_cast<size_t>(f->train.rows), 1.0f);
      w[static_cast<size_t>(i)] = w_i;
      ASSERT_TRUE((*copy)->RefreshLeaves(f->train, w, f->opts).ok());
      losses.push_back(Losses(**copy, *f));
    }
    for (int64_t e = 0; e < f->test.rows; ++e) {
      const double fd = -(losses[0][e] - losses[1][e]) / (2 * eps);
      EXPECT_NEAR(li->at(i, e), fd, 2e-3 * (1 + std::abs(fd))) << i << "," << e;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Objectives, PerObjective, ::testing::Values("regression", "binary", "multiclass"));

// BoostIn on one tree with learning rate 1: the change of the leaf value
// when row i's weight moves (structure fixed), times the test row's gradient
// at the margin before the tree. At learning rate 0.3 too: Loupe's BoostIn
// uses the exact derivative (θ = v/η), not tree_influence's scaled v.
TEST(BoostIn, EqualsFiniteDifferenceOnOneTree) {
  for (double lr : {1.0, 0.3}) {
    auto f = Fit("binary", 120, 1, 3, lr);
    const InfluenceMatrix bi = BoostIn(f->In());
    const RowsPass test = ReplayRows(f->model, f->test, 1);
    const RowsPass train = ReplayRows(f->model, f->train, 1);
    const double eps = 1e-2;
    for (int64_t i : {5, 60, 111}) {
      std::vector<Ensemble> models;
      for (double w_i : {1 + eps, 1 - eps}) {
        // XGBoost's refresh updater re-estimates the leaves with the weights
        // and the structure frozen.
        auto copy = Booster::FromJson(*f->booster->SaveJson(), 1);
        ASSERT_TRUE(copy.ok());
        std::vector<float> w(static_cast<size_t>(f->train.rows), 1.0f);
        w[static_cast<size_t>(i)] = static_cast<float>(w_i);
        ASSERT_TRUE((*copy)->RefreshLeaves(f->train, w, f->opts).ok());
        auto m = ParseXgboostJson(*(*copy)->SaveJson(), "model");
        ASSERT_TRUE(m.ok());
        models.push_back(std::move(*m));
      }
      const int32_t leaf = train.Leaf(0, i);
      const int32_t node = f->model.trees[0].leaf_node[leaf];
      const double dv_dw = (models[0].trees[0].value[node] - models[1].trees[0].value[node]) / (2 * eps);
      for (int64_t e = 0; e < f->test.rows; ++e) {
        const double expected = test.Leaf(0, e) == leaf ? -test.g[test.GIndex(0, e, 0)] * dv_dw : 0.0;
        EXPECT_NEAR(bi.at(i, e), expected, 1e-4 + 1e-3 * std::abs(expected)) << "lr " << lr << " row " << i;
      }
    }
  }
}

TEST(LeaveOneOut, EqualsRealRetraining) {
  auto f = Fit("binary", 50, 10, 3, 0.3);
  auto loo = LeaveOneOut(f->In());
  ASSERT_TRUE(loo.ok()) << loo.status();
  const std::vector<double> base = Losses(*f->booster, *f);
  for (int64_t i : {0, 25, 49}) {
    std::vector<int64_t> rows;
    for (int64_t k = 0; k < f->train.rows; ++k) if (k != i) rows.push_back(k);
    auto b = Booster::Train(f->train.Select(rows), f->opts);
    ASSERT_TRUE(b.ok());
    const std::vector<double> after = Losses(**b, *f);
    for (int64_t e = 0; e < f->test.rows; ++e) EXPECT_NEAR(loo->at(i, e), after[e] - base[e], 1e-9);
  }
}

TEST(LeafInfluence, TopKWithEveryLeafEqualsAllRowsAndSingleIsCheaperApproximation) {
  auto f = Fit("multiclass", 60, 4, 3, 0.3);
  auto all = LeafInfluence(f->In(), -1);
  auto topk = LeafInfluence(f->In(), 1000);
  auto single = LeafInfluence(f->In(), 0);
  ASSERT_TRUE(all.ok() && topk.ok() && single.ok());
  for (size_t k = 0; k < all->values.size(); ++k) EXPECT_NEAR(all->values[k], topk->values[k], 1e-12);
  EXPECT_GT(Pearson(all->values, single->values), 0.5);
}

TEST(LeafInfluence, ApproximatesLeafRefit) {
  auto f = Fit("regression", 100, 10, 3, 0.3);
  auto li = LeafInfluence(f->In(), -1);
  auto refit = LeafRefit(f->In());
  ASSERT_TRUE(li.ok() && refit.ok());
  EXPECT_GT(Pearson(li->values, refit->values), 0.95);
}

// A grossly mislabelled training row must come out harmful on average under
// every estimator that looks at labels.
TEST(Methods, FlagAMislabelledRowAsHarmful) {
  auto f = std::make_unique<Fitted>();
  f->train = Synthetic(60, 4, "regression", 3);
  f->train.y[7] += 25;
  f->test = Synthetic(30, 4, "regression", 4);
  f->opts = Options("regression", 10, 3, 0.3);
  f->booster = std::move(*Booster::Train(f->train, f->opts));
  f->model = std::move(*ParseXgboostJson(*f->booster->SaveJson(), "model"));
  ExplainInput in = f->In();
  in.subsample_models = 300;
  for (const char* method : {"boostin", "leaf_influence", "leaf_influence_sp", "leaf_refit", "loo", "subsample", "trex"}) {
    auto m = ComputeInfluence(method, in);
    ASSERT_TRUE(m.ok()) << method << ": " << m.status();
    double sum = 0;
    for (int64_t e = 0; e < m->n_test; ++e) sum += m->at(7, e);
    EXPECT_LT(sum, 0) << method;
    for (double v : m->values) ASSERT_TRUE(std::isfinite(v)) << method;
  }
}

TEST(Methods, UnknownMethodNamesTheParameter) {
  auto f = Fit("binary", 30, 2, 2, 0.3);
  auto m = ComputeInfluence("tracin", f->In());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("'method'"), std::string::npos);
}

TEST(Methods, CancellationStopsLongMethods) {
  auto f = Fit("binary", 60, 5, 3, 0.3);
  ExplainInput in = f->In();
  in.check = [] { return absl::CancelledError("stop"); };
  for (const char* method : {"leaf_influence", "leaf_refit", "loo", "subsample"}) {
    EXPECT_EQ(ComputeInfluence(method, in).status().code(), absl::StatusCode::kCancelled) << method;
  }
}

TEST(Statistics, RankMeasures) {
  EXPECT_NEAR(Pearson({1, 2, 3}, {2, 4, 6}), 1.0, 1e-12);
  EXPECT_NEAR(Spearman({1, 2, 3, 4}, {1, 8, 27, 64}), 1.0, 1e-12);
  EXPECT_NEAR(Spearman({1, 2, 3}, {3, 2, 1}), -1.0, 1e-12);
  EXPECT_NEAR(JaccardTop({10, 9, 1, 0}, {10, 0, 9, 1}, 0.5), 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(Auc({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}), 0.75, 1e-12);
}

}  // namespace
}  // namespace loupe::gbdt
