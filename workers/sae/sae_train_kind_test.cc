#include "workers/sae/sae_train_kind.h"

#include <set>

#include "workers/sae/sae_eval_kind.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/torch.h>

#include <chrono>
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "loupe/v1/kinds.pb.h"
#include "nlohmann/json.hpp"
#include "workers/common/safetensors_torch.h"
#include "workers/runtime/params.h"
#include "workers/runtime/testing/fake_job_context.h"

namespace loupe {
namespace {

using loupe::v1::SaeTrainParams;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// Debian's LibTorch does its matrix products in OpenBLAS's pthread build,
// whose own thread pool ignores at::set_num_threads and busy-waits between
// calls; on a shared 2-core machine that alone can triple the run time. The
// test pins it, and LibTorch, to one thread so its timing means something.
void UseOneThread() {
  at::set_num_threads(1);
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(1);
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Params from key=value text, defaults applied as the server would.
absl::StatusOr<SaeTrainParams> Params(const std::map<std::string, std::string>& given,
                                      const JobKind& kind) {
  SaeTrainParams p;
  for (const auto& [k, v] : given) {
    if (absl::Status s = SetParamFromText(&p, k, v); !s.ok()) return s;
  }
  if (absl::Status s = ApplyDefaultsAndValidate(kind, &p); !s.ok()) return s;
  return p;
}

TEST(SaeTrainKind, DeclaresEveryParameterWithHelpAndDefault) {
  std::unique_ptr<JobKind> kind = MakeSaeTrainKind();
  EXPECT_EQ(kind->name(), "sae.train");
  EXPECT_TRUE(CheckParamTable(*kind, SaeTrainParams::descriptor()).ok());
  // Inputs (and the optional safetensors entry name) have no default.
  const std::set<std::string> no_default = {"file", "tensor", "model", "corpus", "tokenizer"};
  for (const ParamSpec& p : kind->params()) {
    EXPECT_FALSE(p.help.empty()) << p.name;
    EXPECT_EQ(p.default_value.empty(), no_default.count(p.name) > 0) << p.name;
  }
  std::unique_ptr<JobKind> eval = MakeSaeEvalKind();
  EXPECT_EQ(eval->name(), "sae.eval");
  EXPECT_TRUE(CheckParamTable(*eval, loupe::v1::SaeEvalParams::descriptor()).ok());
  for (const ParamSpec& p : eval->params()) EXPECT_FALSE(p.help.empty()) << p.name;
  EXPECT_THAT(kind->artifact_names(), UnorderedElementsAre("sae_weights.safetensors", "cfg.json"));
}

TEST(SaeTrainKind, RefusesBadParametersNamingThem) {
  std::unique_ptr<JobKind> kind = MakeSaeTrainKind();
  auto error = [&](const std::map<std::string, std::string>& given) {
    absl::StatusOr<SaeTrainParams> p = Params(given, *kind);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(p.status().message());
  };
  EXPECT_EQ(error({{"k", "2000"}}), "sae.train parameter 'k': must be at most d_sae (1024), got 2000");
  EXPECT_EQ(error({{"warmup_steps", "500"}, {"steps", "100"}}),
            "sae.train parameter 'warmup_steps': must be at most steps (100), got 500");
  EXPECT_THAT(error({{"firing_probability", "0"}}),
              HasSubstr("sae.train parameter 'firing_probability': must be greater than 0"));
  EXPECT_THAT(error({{"firing_probability", "1e-6"}, {"batch_size", "4"}}),
              HasSubstr("sae.train parameter 'firing_probability': a batch would hold"));
  EXPECT_THAT(error({{"d_sae", "1048576"}, {"d_model", "1024"}}), HasSubstr("sae.train parameter 'd_sae': d_sae × d_model"));
  EXPECT_THAT(error({{"n_features", "1048576"}, {"d_model", "1024"}}), HasSubstr("parameter 'n_features'"));
  EXPECT_THAT(error({{"batch_size", "1048576"}}), HasSubstr("parameter 'batch_size': batch_size × d_sae"));
  // Declared bounds and choices (checked by the platform from the table).
  EXPECT_THAT(error({{"batch_size", "1"}}), HasSubstr("'batch_size': must be at least 2"));
  EXPECT_THAT(error({{"correlation", "1.5"}}), HasSubstr("'correlation': must be at most 1"));
  EXPECT_THAT(error({{"lr", "0"}}), HasSubstr("'lr': must be at least"));
  EXPECT_THAT(error({{"source", "gpt2"}}), HasSubstr("'source': 'gpt2' is not one of synthetic"));
  EXPECT_THAT(error({{"architecture", "gated"}}), HasSubstr("'architecture': 'gated' is not one of relu"));
  EXPECT_THAT(error({{"source", "file"}}), HasSubstr("sae.train parameter 'file': is required with source=file"));
  EXPECT_THAT(error({{"source", "lm"}, {"corpus", "dataset:c"}}),
              HasSubstr("sae.train parameter 'model': is required with source=lm"));
  EXPECT_THAT(error({{"source", "lm"}, {"model", "job:m"}, {"corpus", "dataset:c"}, {"hook", "resid_sideways"}}),
              HasSubstr("sae.train parameter 'hook': "));
  EXPECT_THAT(error({{"normalize_activations", "batch_norm"}}), HasSubstr("'normalize_activations'"));
  EXPECT_TRUE(Params({}, *kind).ok());
}

TEST(SaeTrainKind, CancellationStopsWithinAStep) {
  std::unique_ptr<JobKind> kind = MakeSaeTrainKind();
  absl::StatusOr<SaeTrainParams> p = Params({}, *kind);
  ASSERT_TRUE(p.ok());
  testing::FakeJobContext ctx;
  ctx.cancel_after_checks = 5;
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = kind->Run(*p, ctx);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_LT(Seconds(start), 1.0);
  EXPECT_EQ(ctx.progress.size(), 5u);
  EXPECT_TRUE(ctx.results.empty());
  EXPECT_TRUE(ctx.artifacts.empty());
}

TEST(SaeTrainKind, IsDeterministicPerSeed) {
  std::unique_ptr<JobKind> kind = MakeSaeTrainKind();
  auto run = [&](const std::string& seed) {
    absl::StatusOr<SaeTrainParams> p =
        Params({{"steps", "30"}, {"warmup_steps", "5"}, {"d_sae", "128"}, {"n_features", "64"}, {"seed", seed},
                {"correlation", "0.3"}},
               *kind);
    EXPECT_TRUE(p.ok()) << p.status();
    testing::FakeJobContext ctx;
    EXPECT_TRUE(kind->Run(*p, ctx).ok());
    return ctx.results;
  };
  std::map<std::string, double> a = run("1"), b = run("1"), c = run("2");
  for (const char* field : {"fvu", "l0", "dead_fraction", "mmcs", "train_fvu"}) {
    EXPECT_EQ(a.at(field), b.at(field)) << field;
  }
  EXPECT_NE(a.at("mmcs"), c.at("mmcs"));
}

// One full run with every parameter at its default, shared by the tests below.
class DefaultRunTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    UseOneThread();
    kind_ = MakeSaeTrainKind().release();
    absl::StatusOr<SaeTrainParams> p = Params({}, *kind_);
    ASSERT_TRUE(p.ok()) << p.status();
    params_ = new SaeTrainParams(*p);
    ctx_ = new testing::FakeJobContext();
    const auto start = std::chrono::steady_clock::now();
    status_ = new absl::Status(kind_->Run(*params_, *ctx_));
    seconds_ = Seconds(start);
    std::printf("default sae.train run: %.1f s\n", seconds_);
    for (const auto& line : ctx_->logs) std::printf("  log: %s\n", line.c_str());
  }
  static void TearDownTestSuite() {
    delete status_;
    delete ctx_;
    delete params_;
    delete kind_;
  }

  static JobKind* kind_;
  static SaeTrainParams* params_;
  static testing::FakeJobContext* ctx_;
  static absl::Status* status_;
  static double seconds_;
};

JobKind* DefaultRunTest::kind_ = nullptr;
SaeTrainParams* DefaultRunTest::params_ = nullptr;
testing::FakeJobContext* DefaultRunTest::ctx_ = nullptr;
absl::Status* DefaultRunTest::status_ = nullptr;
double DefaultRunTest::seconds_ = 0;

TEST_F(DefaultRunTest, FinishesQuicklyAndRecoversTheFeatures) {
  ASSERT_TRUE(status_->ok()) << *status_;
  EXPECT_LT(seconds_, 60.0);
  const auto& r = ctx_->results;
  for (const char* field : {"fvu", "l0", "dead_fraction", "mmcs"}) EXPECT_TRUE(r.count(field)) << field;
  EXPECT_GT(r.at("mmcs"), 0.95);
  EXPECT_LT(r.at("fvu"), 0.2);
  EXPECT_GT(r.at("fvu"), 0.0);
  EXPECT_LE(r.at("l0"), static_cast<double>(params_->k()));
  EXPECT_GT(r.at("l0"), 0.5 * static_cast<double>(params_->k()));
  EXPECT_GE(r.at("dead_fraction"), 0.0);
  EXPECT_LT(r.at("dead_fraction"), 0.6);
  EXPECT_EQ(r.at("steps"), static_cast<double>(params_->steps()));
  EXPECT_EQ(r.at("tokens"), static_cast<double>(params_->steps() * params_->batch_size()));
}

TEST_F(DefaultRunTest, ReportsProgressAndMetricsEveryStep) {
  ASSERT_TRUE(status_->ok());
  const int64_t steps = params_->steps();
  ASSERT_EQ(ctx_->progress.size(), static_cast<size_t>(steps));
  EXPECT_EQ(ctx_->progress.back(), std::make_pair(steps, steps));
  ASSERT_EQ(ctx_->metrics.size(), static_cast<size_t>(steps));
  for (const auto& [step, m] : ctx_->metrics) {
    ASSERT_TRUE(m.count("fvu") && m.count("l0")) << step;
  }
  EXPECT_EQ(ctx_->metrics.front().first, 1);
  EXPECT_LT(ctx_->metrics.back().second.at("fvu"), ctx_->metrics.front().second.at("fvu"));
  EXPECT_TRUE(ctx_->metrics.back().second.count("mmcs"));
  ASSERT_GE(ctx_->logs.size(), 2u);
  EXPECT_THAT(ctx_->logs.front(), HasSubstr("sae.train: topk SAE d_in=64 d_sae=1024"));
  EXPECT_THAT(ctx_->logs.back(), HasSubstr("mmcs"));
}

TEST_F(DefaultRunTest, WritesSaeLensArtifacts) {
  ASSERT_TRUE(status_->ok());
  ASSERT_TRUE(ctx_->artifacts.count("cfg.json"));
  ASSERT_TRUE(ctx_->artifacts.count("sae_weights.safetensors"));
  EXPECT_EQ(ctx_->media_types.at("cfg.json"), "application/json");
  EXPECT_EQ(ctx_->media_types.at("sae_weights.safetensors"), "application/octet-stream");

  nlohmann::json cfg = nlohmann::json::parse(ctx_->artifacts.at("cfg.json"));
  EXPECT_EQ(cfg["d_in"], 64);
  EXPECT_EQ(cfg["d_sae"], 1024);
  EXPECT_EQ(cfg["k"], params_->k());
  EXPECT_EQ(cfg["architecture"], "topk");
  EXPECT_EQ(cfg["dtype"], "float32");
  EXPECT_EQ(cfg["device"], "cpu");
  EXPECT_EQ(cfg["apply_b_dec_to_input"], true);
  EXPECT_EQ(cfg["normalize_activations"], "layer_norm");
  EXPECT_EQ(cfg["reshape_activations"], "none");
  EXPECT_EQ(cfg["metadata"]["model_name"], "synthetic");
  EXPECT_EQ(cfg["metadata"]["hook_name"], "synthetic");
  EXPECT_EQ(cfg["metadata"]["context_size"], 1);
  EXPECT_EQ(cfg["metadata"]["prepend_bos"], false);
  EXPECT_EQ(cfg["metadata"]["dataset_path"], "synthetic");
  EXPECT_TRUE(cfg["metadata"].contains("sae_lens_training_version"));

  absl::StatusOr<std::shared_ptr<const safetensors::File>> f =
      safetensors::File::FromBytes(ctx_->artifacts.at("sae_weights.safetensors"));
  ASSERT_TRUE(f.ok()) << f.status();
  absl::StatusOr<torch::Tensor> w_dec = safetensors::LoadTensor(*f, "W_dec");
  absl::StatusOr<torch::Tensor> w_enc = safetensors::LoadTensor(*f, "W_enc");
  ASSERT_TRUE(w_dec.ok() && w_enc.ok());
  EXPECT_EQ(w_dec->sizes(), (std::vector<int64_t>{1024, 64}));
  EXPECT_EQ(w_enc->sizes(), (std::vector<int64_t>{64, 1024}));
  EXPECT_EQ(w_dec->scalar_type(), torch::kFloat);
  // The decoder leaves training with unit-norm rows.
  EXPECT_LT((w_dec->norm(2, 1) - 1).abs().max().item<float>(), 1e-5);
  EXPECT_EQ((*f)->Find("b_enc")->shape, (std::vector<int64_t>{1024}));
  EXPECT_EQ((*f)->Find("b_dec")->shape, (std::vector<int64_t>{64}));
}

}  // namespace
}  // namespace loupe
