// gbdt.influence end to end on scikit-learn's tables (and UCI Adult when
// ../shared is present), plus its error paths.
#include "workers/gbdt/gbdt_influence_kind.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_split.h"
#include "loupe/v1/kinds.pb.h"
#include "workers/common/safetensors.h"
#include "workers/gbdt/gbdt_test_util.h"
#include "workers/runtime/params.h"
#include "workers/runtime/testing/fake_job_context.h"

namespace loupe {
namespace {

using loupe::testing::FakeJobContext;
using loupe::v1::GbdtInfluenceParams;

absl::Status RunKind(GbdtInfluenceParams p, FakeJobContext& ctx) {
  auto kind = MakeGbdtInfluenceKind();
  if (absl::Status s = ApplyDefaultsAndValidate(*kind, &p); !s.ok()) return s;
  return kind->Run(p, ctx);
}

std::string WriteCsv(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

class RealTables : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = gbdt::testing::RealTables();
    if (dir_.empty()) GTEST_SKIP() << "scikit-learn (python3-sklearn) is not available to write the tables";
  }
  std::string dir_;
};

TEST_F(RealTables, BreastCancerBoostInWithRemovalEvaluation) {
  FakeJobContext ctx;
  ctx.threads_ = 2;
  ctx.inputs["dataset:bc"] = dir_ + "/breast_cancer.csv";
  GbdtInfluenceParams p;
  p.set_data("dataset:bc");
  p.set_n_estimators(20);
  p.set_max_depth(3);
  p.set_max_test_rows(12);
  p.set_evaluation("remove,test_set");
  p.set_eval_test_points(3);
  ASSERT_TRUE(RunKind(p, ctx).ok());
  EXPECT_EQ(ctx.results["n_train"], 455);
  EXPECT_EQ(ctx.results["n_test"], 12);
  EXPECT_LT(ctx.results["margin_max_abs_error"], 1e-5);
  EXPECT_LT(ctx.results["leaf_value_max_abs_error"], 1e-5);
  EXPECT_GT(ctx.results["test_accuracy"], 0.85);
  auto file = safetensors::File::FromBytes(ctx.artifacts.at("influence.safetensors"));
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->Find("influence")->shape, (std::vector<int64_t>{455, 12}));
  EXPECT_EQ((*file)->metadata().at("method"), "boostin");
  const std::vector<std::string> lines = absl::StrSplit(ctx.artifacts.at("top_rows.csv"), '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 1u + 12 * 2 * 10);
  EXPECT_TRUE(ctx.artifacts.count("eval_remove.csv"));
  EXPECT_TRUE(ctx.artifacts.count("eval_test_set.json"));
  EXPECT_TRUE(ctx.results.count("remove_loss_gain_vs_random"));
  // Removing the rows BoostIn calls most helpful hurts more than removing random rows.
  EXPECT_GT(ctx.results["remove_loss_2pct"], ctx.results["remove_random_loss_2pct"]);
}

TEST_F(RealTables, WineMulticlassLeafRefitAndAgreement) {
  FakeJobContext ctx;
  ctx.inputs["dataset:wine"] = dir_ + "/wine.csv";
  GbdtInfluenceParams p;
  p.set_data("dataset:wine");
  p.set_n_estimators(10);
  p.set_max_depth(3);
  p.set_method("leaf_refit");
  p.set_max_test_rows(10);
  p.set_evaluation("agreement");
  p.set_compare_methods("boostin,leaf_influence_sp,random");
  ASSERT_TRUE(RunKind(p, ctx).ok());
  EXPECT_LT(ctx.results["margin_max_abs_error"], 1e-5);
  EXPECT_GT(ctx.results["agreement_spearman_boostin"], ctx.results["agreement_spearman_random"]);
  EXPECT_TRUE(ctx.artifacts.count("eval_agreement.csv"));
}

TEST_F(RealTables, DiabetesRegressionTrexAndUserModel) {
  FakeJobContext ctx;
  ctx.inputs["dataset:diabetes"] = dir_ + "/diabetes.csv";
  GbdtInfluenceParams p;
  p.set_data("dataset:diabetes");
  p.set_n_estimators(15);
  p.set_max_depth(3);
  p.set_method("trex");
  p.set_max_test_rows(8);
  ASSERT_TRUE(RunKind(p, ctx).ok());
  EXPECT_LT(ctx.results["leaf_value_max_abs_error"], 1e-4);
  // The same model handed back as a user's model gives the same influence.
  FakeJobContext again;
  again.inputs = ctx.inputs;
  again.inputs["job:1/model.json"] = WriteCsv(again.scratch_dir(), "model.json", ctx.artifacts.at("model.json"));
  p.set_model("job:1/model.json");
  ASSERT_TRUE(RunKind(p, again).ok());
  EXPECT_EQ(again.artifacts.at("influence.safetensors"), ctx.artifacts.at("influence.safetensors"));
  // With the wrong learning rate the leaf values cannot be replayed.
  FakeJobContext wrong;
  wrong.inputs = again.inputs;
  p.set_learning_rate(0.1);
  absl::Status s = RunKind(p, wrong);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'model'"), std::string::npos) << s;
}

TEST_F(RealTables, AdultNoiseDetection) {
  if (!std::filesystem::exists(dir_ + "/adult.csv")) GTEST_SKIP() << "../shared/data/uci-adult is absent";
  FakeJobContext ctx;
  ctx.threads_ = 2;
  ctx.inputs["dataset:adult"] = dir_ + "/adult.csv";
  GbdtInfluenceParams p;
  p.set_data("dataset:adult");
  p.set_n_estimators(10);
  p.set_max_depth(3);
  p.set_test_fraction(0.9);  // a ~1,600-row training set keeps the test fast
  p.set_max_test_rows(200);
  p.set_evaluation("noise");
  ASSERT_TRUE(RunKind(p, ctx).ok());
  EXPECT_GT(ctx.results["test_accuracy"], 0.75);
  // BoostIn finds flipped labels far more often than chance among its top 10%.
  EXPECT_GT(ctx.results["noise_fraction_found_10pct"], 1.5 * ctx.results["noise_random_fraction_found_10pct"]);
}

TEST(GbdtInfluenceFormats, LibsvmTrainingAndTestFiles) {
  FakeJobContext ctx;
  std::string train, test;
  for (int i = 0; i < 80; ++i) {
    const double a = (i * 37 % 100) / 100.0, b = (i * 53 % 100) / 100.0;
    std::string& out = i < 60 ? train : test;
    // 1-based indices; feature 3 is absent from some rows (missing, as in XGBoost).
    out += std::to_string(a + b > 1 ? 1 : 0) + " 1:" + std::to_string(a) + " 2:" + std::to_string(b) +
           (i % 3 == 0 ? "" : " 3:0.5") + "\n";
  }
  ctx.inputs["dataset:train"] = WriteCsv(ctx.scratch_dir(), "train.svm", train);
  ctx.inputs["dataset:test"] = WriteCsv(ctx.scratch_dir(), "test.svm", test);
  GbdtInfluenceParams p;
  p.set_data("dataset:train");
  p.set_test_data("dataset:test");
  p.set_n_estimators(10);
  p.set_max_depth(2);
  p.set_method("leaf_influence");
  ASSERT_TRUE(RunKind(p, ctx).ok());
  EXPECT_EQ(ctx.results["n_train"], 60);
  EXPECT_EQ(ctx.results["n_test"], 20);
  EXPECT_LT(ctx.results["margin_max_abs_error"], 1e-5);
}

TEST(GbdtInfluenceErrors, NameTheField) {
  FakeJobContext ctx;
  const std::string bad = WriteCsv(ctx.scratch_dir(), "bad.csv", "a,b,label\n1,2,0\n3,oops,1\n");
  const std::string good = WriteCsv(ctx.scratch_dir(), "good.csv", "a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n9,1,1\n");
  ctx.inputs["dataset:bad"] = bad;
  ctx.inputs["dataset:good"] = good;
  GbdtInfluenceParams p;
  p.set_data("dataset:bad");
  absl::Status s = RunKind(p, ctx);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'data'"), std::string::npos) << s;
  EXPECT_NE(s.message().find("oops"), std::string::npos) << s;

  p.set_data("dataset:good");
  p.set_label("target");
  s = RunKind(p, ctx);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'label'"), std::string::npos) << s;

  p.set_label("label");
  p.set_method("tracin");
  s = RunKind(p, ctx);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'method'"), std::string::npos) << s;

  p.set_method("boostin");
  p.set_evaluation("remove,flip");
  s = RunKind(p, ctx);
  EXPECT_NE(s.message().find("'evaluation'"), std::string::npos) << s;

  p.clear_evaluation();
  p.set_objective("binary:logistic");
  const std::string three = WriteCsv(ctx.scratch_dir(), "three.csv", "a,label\n1,0\n2,1\n3,2\n4,1\n5,0\n");
  ctx.inputs["dataset:three"] = three;
  p.set_data("dataset:three");
  s = RunKind(p, ctx);
  EXPECT_NE(s.message().find("'label'"), std::string::npos) << s;

  GbdtInfluenceParams empty;
  s = RunKind(empty, ctx);
  EXPECT_NE(s.message().find("'data'"), std::string::npos) << s;
}

TEST(GbdtInfluenceErrors, CancelledJobStops) {
  FakeJobContext ctx;
  const std::string csv = WriteCsv(ctx.scratch_dir(), "t.csv", [] {
    std::string s = "a,b,label\n";
    for (int i = 0; i < 60; ++i) s += std::to_string(i % 7) + "," + std::to_string(i % 5) + "," + std::to_string(i % 2) + "\n";
    return s;
  }());
  ctx.inputs["dataset:t"] = csv;
  ctx.cancel_after_checks = 1;
  GbdtInfluenceParams p;
  p.set_data("dataset:t");
  p.set_n_estimators(5);
  p.set_method("loo");
  EXPECT_EQ(RunKind(p, ctx).code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace loupe
