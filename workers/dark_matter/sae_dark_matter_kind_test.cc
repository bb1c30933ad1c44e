// sae.dark_matter end to end on a tiny GPT-2 (random weights) with TopK SAEs
// trained here on its activations, and on activation files; parameter errors.
#include "workers/dark_matter/sae_dark_matter_kind.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "loupe/v1/kinds.pb.h"
#include "nlohmann/json.hpp"
#include "workers/common/safetensors_torch.h"
#include "workers/dark_matter/analysis.h"
#include "workers/lm/activations/activation_source.h"
#include "workers/lm/model/config.h"
#include "workers/lm/model/hf_io.h"
#include "workers/lm/tokenizer/bpe_trainer.h"
#include "workers/runtime/params.h"
#include "workers/runtime/testing/fake_job_context.h"
#include "workers/sae/sae_model.h"
#include "workers/sae/sae_trainer.h"

namespace loupe {
namespace {

namespace fs = std::filesystem;
using loupe::v1::SaeDarkMatterParams;
using nlohmann::json;
using testing::FakeJobContext;

std::string Text() {
  std::string text;
  for (int i = 0; i < 200; ++i) {
    text += "The quick brown fox " + std::to_string(i * 7) + " jumps over the lazy dog number " +
            std::to_string(i % 13) + ".\n";
  }
  return text;
}

// A TopK SAE trained briefly on rows x (the recipe of workers/sae).
sae::SaeModel TrainTopK(const torch::Tensor& x, int64_t d_sae, int64_t k, int64_t steps, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  sae::SaeTrainerOptions o;
  o.architecture = sae::SaeArchitecture::kTopK;
  o.d_in = x.size(1);
  o.d_sae = d_sae;
  o.k = k;
  o.lr = 3e-3;
  o.total_steps = steps;
  o.warmup_steps = 20;
  o.grad_clip_norm = 0;  // as the recipe this test was written against
  sae::SaeTrainer trainer(o, torch::kCPU, gen);
  trainer.InitDecoderBias(x.slice(0, 0, 2048));
  for (int64_t s = 0; s < steps; ++s) {
    trainer.Step(x.index_select(0, torch::randint(x.size(0), {256}, gen, torch::TensorOptions().dtype(torch::kInt64))));
  }
  sae::SaeModel out = trainer.Model();
  return out;
}

class DarkMatterKindTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    torch::set_num_threads(2);
    dir_ = new std::string(::testing::TempDir() + "/dark_matter_kind_test");
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    lm::BpeTrainerOptions bo;
    bo.vocab_size = 300;
    bo.special_tokens = {"<|endoftext|>"};
    auto tok = lm::TrainByteLevelBpe({Text()}, bo);
    ASSERT_TRUE(tok.ok()) << tok.status();
    auto model = lm::CreateModel(lm::MakeGpt2Config(300, 32, 2, 4, 64), {.seed = 5});
    ASSERT_TRUE(model.ok()) << model.status();
    ASSERT_TRUE(lm::SaveHfModel(**model, *dir_ + "/model").ok());
    ASSERT_TRUE((*tok)->SaveJson(*dir_ + "/model/tokenizer.json").ok());
    std::ofstream(*dir_ + "/corpus.txt") << Text();
    // Activations at the analysed hook, as the kind will gather them.
    lm::ActivationSourceOptions so;
    so.hook = "blocks.1.hook_resid_post";
    so.context_length = 32;
    auto src = lm::ActivationSource::Create(*model, **tok, Text(), so);
    ASSERT_TRUE(src.ok()) << src.status();
    auto acts = lm::CollectActivations(**model, (*src)->sequences(), (*src)->hook());
    ASSERT_TRUE(acts.ok());
    x_ = new torch::Tensor(acts->slice(1, 1).reshape({-1, 32}).contiguous());
    ids_ = new torch::Tensor((*src)->sequences().slice(1, 1).reshape({-1}).contiguous());
    int i = 0;
    for (int64_t width : {64, 128, 256}) {
      ASSERT_TRUE(sae::SaveSaeLensDir(*dir_ + "/sae" + std::to_string(width), TrainTopK(*x_, width, 4, 150, ++i)).ok());
    }
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete x_;
    delete ids_;
  }

  void SetUp() override { kind_ = MakeSaeDarkMatterKind(); }

  void AddInputs(FakeJobContext& ctx) {
    ctx.inputs["model"] = *dir_ + "/model";
    ctx.inputs["corpus"] = *dir_ + "/corpus.txt";
    for (int w : {64, 128, 256}) ctx.inputs["sae" + std::to_string(w)] = *dir_ + "/sae" + std::to_string(w);
  }

  absl::Status Check(SaeDarkMatterParams p) { return ApplyDefaultsAndValidate(*kind_, &p); }

  static std::string* dir_;
  static torch::Tensor* x_;
  static torch::Tensor* ids_;
  std::unique_ptr<JobKind> kind_;
};
std::string* DarkMatterKindTest::dir_ = nullptr;
torch::Tensor* DarkMatterKindTest::x_ = nullptr;
torch::Tensor* DarkMatterKindTest::ids_ = nullptr;

// Every numeric leaf of the report has a definition.
void ExpectDefined(const json& j, const std::string& key, std::set<std::string>* missing) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "definitions") continue;
      ExpectDefined(it.value(), it.key(), missing);
    }
  } else if (j.is_array()) {
    for (const auto& e : j) ExpectDefined(e, key, missing);
  } else if (j.is_number() && !dark_matter::Definitions().contains(key) && key != "seed" && key != "steps" &&
             key != "batch_size" && key != "lr") {
    missing->insert(key);
  }
}

TEST_F(DarkMatterKindTest, ModelSourceRunsEveryAnalysis) {
  FakeJobContext ctx;
  AddInputs(ctx);
  SaeDarkMatterParams p;
  p.set_model("model");
  p.set_corpus("corpus");
  p.set_layer(1);
  p.set_saes("sae128, sae64,sae256");
  p.set_context_length(32);
  p.set_n_tokens(3000);
  p.set_ce_sequences(8);
  p.set_error_sae_steps(80);
  p.set_pursuit_tokens(600);
  absl::Status s = kind_->Run(p, ctx);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(ctx.artifacts.count("report.json"));
  json r = json::parse(ctx.artifacts["report.json"]);
  EXPECT_EQ(r["tokens"], 3000);
  ASSERT_EQ(r["saes"].size(), 3u);
  for (const auto& e : r["saes"]) {
    EXPECT_LT(e["max_identity_error"].get<double>(), 1e-4) << "x = x̂ + linear + nonlinear";
    EXPECT_GT(e["linear_error_r2"].get<double>(), 0.0);
    EXPECT_LT(e["fvu"].get<double>(), 1.0);
  }
  // The CE splice of x itself reproduces the clean loss.
  ASSERT_EQ(r["ce_splice"].size(), 3u);
  for (const auto& e : r["ce_splice"]) {
    EXPECT_NEAR(e["ce_x"].get<double>(), e["ce_clean"].get<double>(), 1e-5);
    EXPECT_GT(e["ce_sae"].get<double>(), 0.0);
  }
  EXPECT_EQ(r["per_token_scaling"].size(), 3u);
  EXPECT_TRUE(r["power_law"].contains("split"));
  EXPECT_EQ(r["power_law"]["split"].size(), 3u);
  EXPECT_EQ(r["error_saes"]["sae"], "sae128");
  for (const char* t : {"error", "linear_error", "nonlinear_error"}) {
    EXPECT_LE(r["error_saes"]["targets"][t]["error_sae_l0"].get<double>(), r["error_saes"]["k"].get<double>());
  }
  for (const auto& e : r["gradient_pursuit"]) {
    EXPECT_LE(e["refined_fvu"].get<double>(), e["fvu"].get<double>() + 1e-6);
  }
  // Earlier layers: the raw previous residual, attention and MLP outputs.
  const json& earlier = r["earlier_layers"]["predictors"];
  std::set<std::string> names;
  for (const auto& e : earlier) names.insert(e["predictor"]);
  // No combined row: the three raw activations sum to x, which would make its
  // R² 1 by construction.
  EXPECT_EQ(names, (std::set<std::string>{"x", "x_hat", "prev_resid_raw", "attn_out_raw", "mlp_out_raw"}));
  EXPECT_TRUE(r["earlier_layers"].contains("combined_note"));
  for (const auto& e : earlier) {
    if (e["predictor"] == "x") {
      EXPECT_NEAR(e["linear_error_r2"].get<double>(), 1.0, 1e-4) << "x W* is linear in x";
    }
  }
  std::set<std::string> missing;
  ExpectDefined(r, "", &missing);
  EXPECT_TRUE(missing.empty()) << "undefined: " << *missing.begin();
  for (const char* t : {"saes.csv", "per_token_scaling.csv", "fvu_split.csv", "error_saes.csv", "ce_splice.csv",
                        "pursuit.csv", "earlier_layers.csv"}) {
    EXPECT_TRUE(ctx.artifacts.count(t)) << t;
  }
  EXPECT_EQ(std::count(ctx.artifacts["saes.csv"].begin(), ctx.artifacts["saes.csv"].end(), '\n'), 4);
  EXPECT_TRUE(ctx.results.count("linear_error_r2"));
  EXPECT_TRUE(ctx.results.count("linear_ce_recovered_pct"));
}

TEST_F(DarkMatterKindTest, ActivationFileSource) {
  FakeJobContext ctx;
  AddInputs(ctx);
  ASSERT_TRUE(safetensors::SaveTensors(*dir_ + "/acts.safetensors", {{"activations", *x_}}).ok());
  ASSERT_TRUE(safetensors::SaveTensors(*dir_ + "/ids.safetensors", {{"token_ids", *ids_}}).ok());
  ctx.inputs["acts"] = *dir_ + "/acts.safetensors";
  ctx.inputs["ids"] = *dir_ + "/ids.safetensors";
  SaeDarkMatterParams p;
  p.set_activations("acts");
  p.set_token_ids("ids");
  p.set_saes("sae64");
  p.set_error_sae_steps(0);
  p.set_pursuit_tokens(0);
  absl::Status s = kind_->Run(p, ctx);
  ASSERT_TRUE(s.ok()) << s;
  json r = json::parse(ctx.artifacts["report.json"]);
  EXPECT_EQ(r["tokens"].get<int64_t>(), x_->size(0));
  EXPECT_FALSE(r.contains("ce_splice"));
  EXPECT_TRUE(r.contains("ce_splice_note"));
  EXPECT_FALSE(r["saes"][0]["error_norm_baselines"]["baseline_token_id_mean"].is_null());
  EXPECT_FALSE(r.contains("error_saes"));

  // A wrong-width SAE is refused with the names of both sides.
  ASSERT_TRUE(safetensors::SaveTensors(*dir_ + "/narrow.safetensors", {{"x", x_->slice(1, 0, 16).contiguous()}}).ok());
  ctx.inputs["narrow"] = *dir_ + "/narrow.safetensors";
  p.set_activations("narrow");
  p.clear_token_ids();
  s = kind_->Run(p, ctx);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("d_in 32"), std::string::npos) << s;
}

TEST_F(DarkMatterKindTest, ParameterErrorsNameTheField) {
  auto expect = [&](const SaeDarkMatterParams& p, const std::string& field) {
    absl::Status s = Check(p);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find("'" + field + "'"), std::string::npos) << s;
  };
  SaeDarkMatterParams p;
  p.set_saes("job:0123456789ab");
  expect(p, "model");
  p.set_model("m");
  p.set_activations("a");
  expect(p, "activations");
  p.clear_activations();
  expect(p, "corpus");
  p.set_corpus("c");
  expect(p, "hook");
  p.set_hook("blocks.1.hook_resid_post");
  p.set_layer(1);
  expect(p, "hook");
  p.clear_layer();
  p.set_hook("blocks.x");
  expect(p, "hook");
  p.set_hook("blocks.1.hook_resid_post");
  EXPECT_TRUE(Check(p).ok()) << Check(p);
  p.set_token_ids("t");
  expect(p, "token_ids");
  p.clear_token_ids();
  p.set_saes("a,,b");
  expect(p, "saes");
  p.set_saes("a");
  p.set_error_sae_d_sae(8);
  p.set_error_sae_k(9);
  expect(p, "error_sae_k");
  SaeDarkMatterParams f;
  f.set_activations("a");
  f.set_saes("s");
  f.set_mlp_sae("m");
  expect(f, "mlp_sae");
  f.clear_mlp_sae();
  f.set_layer(2);
  expect(f, "layer");
  f.clear_layer();
  f.set_train_fraction(1.5);
  expect(f, "train_fraction");
}

TEST_F(DarkMatterKindTest, ParamTableMatchesTheMessage) {
  EXPECT_TRUE(CheckParamTable(*kind_, SaeDarkMatterParams::descriptor()).ok())
      << CheckParamTable(*kind_, SaeDarkMatterParams::descriptor());
}

TEST_F(DarkMatterKindTest, CancellationStops) {
  FakeJobContext ctx;
  AddInputs(ctx);
  ctx.cancel_after_checks = 2;
  SaeDarkMatterParams p;
  p.set_model("model");
  p.set_corpus("corpus");
  p.set_layer(1);
  p.set_saes("sae64,sae128");
  p.set_context_length(32);
  p.set_n_tokens(2000);
  EXPECT_EQ(kind_->Run(p, ctx).code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace loupe
