// sae.train and sae.eval end to end through their JobKind interfaces: every
// architecture, the file and lm sources, sae.eval of a trained job, the CE
// splice, and resuming from a checkpoint.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "loupe/v1/kinds.pb.h"
#include "nlohmann/json.hpp"
#include "workers/common/safetensors_torch.h"
#include "workers/lm/activations/splice.h"
#include "workers/lm/model/config.h"
#include "workers/lm/model/hf_io.h"
#include "workers/lm/tokenizer/bpe_trainer.h"
#include "workers/runtime/params.h"
#include "workers/runtime/testing/fake_job_context.h"
#include "workers/sae/npy_format.h"
#include "workers/sae/sae_eval_kind.h"
#include "workers/sae/sae_evaluation.h"
#include "workers/sae/sae_model.h"
#include "workers/sae/sae_train_kind.h"
#include "workers/sae/synthetic_source.h"

namespace loupe {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

template <typename P>
absl::StatusOr<P> Params(const JobKind& kind, const std::map<std::string, std::string>& given) {
  P p;
  for (const auto& [k, v] : given) {
    if (absl::Status s = SetParamFromText(&p, k, v); !s.ok()) return s;
  }
  if (absl::Status s = ApplyDefaultsAndValidate(kind, &p); !s.ok()) return s;
  return p;
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("sae_kinds_test_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string File(const std::string& n) const { return (path / n).string(); }
};

// Writes the artifacts of a finished fake job into `dir` (as job:ID resolves).
void DumpArtifacts(const testing::FakeJobContext& ctx, const fs::path& dir) {
  fs::create_directories(dir);
  for (const auto& [name, bytes] : ctx.artifacts) std::ofstream(dir / name, std::ios::binary) << bytes;
}

const std::map<std::string, std::string> kSmall = {{"d_model", "32"},         {"n_features", "128"},
                                                   {"d_sae", "256"},          {"k", "4"},
                                                   {"firing_probability", "0.02"}, {"steps", "500"},
                                                   {"lr", "0.01"},            {"warmup_steps", "20"},
                                                   {"seed", "3"}};

TEST(SaeKinds, EveryArchitectureLearnsTheGroundTruthThroughTheKind) {
  at::set_num_threads(1);
  std::unique_ptr<JobKind> kind = MakeSaeTrainKind();
  for (const char* arch : {"relu", "topk", "batchtopk", "jumprelu"}) {
    SCOPED_TRACE(arch);
    auto given = kSmall;
    given["architecture"] = arch;
    absl::StatusOr<v1::SaeTrainParams> p = Params<v1::SaeTrainParams>(*kind, given);
    ASSERT_TRUE(p.ok()) << p.status();
    testing::FakeJobContext ctx;
    ASSERT_TRUE(kind->Run(*p, ctx).ok());
    EXPECT_GT(ctx.results.at("mmcs"), 0.8);
    EXPECT_LT(ctx.results.at("fvu"), 0.35);
    EXPECT_GT(ctx.results.at("nmse"), 0.0);
    EXPECT_EQ(ctx.results.count("dead_window_tokens"), 1u);
    nlohmann::json cfg = nlohmann::json::parse(ctx.artifacts.at("cfg.json"));
    const std::string want = std::string(arch) == "relu" ? "standard"
                             : std::string(arch) == "topk" ? "topk"
                                                           : "jumprelu";
    EXPECT_EQ(cfg["architecture"], want);
    EXPECT_EQ(cfg["metadata"]["loupe_architecture"], arch);
  }
}

// Synthetic activations saved as a file: trained on through source=file, and
// the result scored by sae.eval from the job's artifacts.
TEST(SaeKinds, FileSourceTrainsAndSaeEvalScoresTheJob) {
  at::set_num_threads(1);
  TempDir dir("file");
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
  sae::SyntheticOptions so;
  so.d_model = 32;
  so.n_features = 128;
  so.firing_probability = 0.02;
  sae::SyntheticSource source(so, gen, torch::kCPU);
  torch::Tensor x = source.Sample(40000);
  // BF16 in safetensors, F32 in .npy.
  ASSERT_TRUE(safetensors::SaveTensors(dir.File("acts.safetensors"), {{"acts", x.to(torch::kBFloat16)}}).ok());
  std::ofstream(dir.File("acts.npy"), std::ios::binary) << sae::NpyBytes(x);

  std::unique_ptr<JobKind> train = MakeSaeTrainKind();
  std::unique_ptr<JobKind> eval = MakeSaeEvalKind();
  for (const char* file : {"acts.safetensors", "acts.npy"}) {
    SCOPED_TRACE(file);
    testing::FakeJobContext ctx;
    ctx.inputs["dataset:acts"] = dir.File(file);
    auto given = kSmall;
    given["source"] = "file";
    given["file"] = "dataset:acts";
    given["normalize_activations"] = "expected_average_only_in";
    given["eval_tokens"] = "4000";
    absl::StatusOr<v1::SaeTrainParams> p = Params<v1::SaeTrainParams>(*train, given);
    ASSERT_TRUE(p.ok()) << p.status();
    absl::Status s = train->Run(*p, ctx);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_LT(ctx.results.at("fvu"), 0.3);
    EXPECT_NE(ctx.results.at("normalization_scale"), 1.0);
    EXPECT_EQ(ctx.results.count("mmcs"), 0u);  // no ground truth in a file

    // The saved SAE acts on raw activations (the scale is folded in).
    DumpArtifacts(ctx, dir.path / "job");
    testing::FakeJobContext ectx;
    ectx.inputs["job:t"] = (dir.path / "job").string();
    ectx.inputs["dataset:acts"] = dir.File(file);
    absl::StatusOr<v1::SaeEvalParams> ep = Params<v1::SaeEvalParams>(
        *eval, {{"sae", "job:t"}, {"source", "file"}, {"file", "dataset:acts"}, {"tokens", "4000"}});
    ASSERT_TRUE(ep.ok()) << ep.status();
    s = eval->Run(*ep, ectx);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_NEAR(ectx.results.at("fvu"), ctx.results.at("fvu"), 1e-4);
    EXPECT_NEAR(ectx.results.at("l0"), ctx.results.at("l0"), 1e-4);
    fs::remove_all(dir.path / "job");
  }
  // Errors name the parameter.
  testing::FakeJobContext ctx;
  ctx.inputs["dataset:bad"] = dir.File("missing.npy");
  auto given = kSmall;
  given["source"] = "file";
  given["file"] = "dataset:bad";
  absl::StatusOr<v1::SaeTrainParams> p = Params<v1::SaeTrainParams>(*train, given);
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(std::string(train->Run(*p, ctx).message()), HasSubstr("sae.train parameter 'file': "));
}

// Interrupted mid-way, the next attempt of the same job (a fresh scratch
// directory, the same state directory) resumes from the last checkpoint and
// ends exactly where an uninterrupted run ends.
TEST(SaeKinds, ResumesFromTheCheckpointAfterAnInterruption) {
  at::set_num_threads(1);
  std::unique_ptr<JobKind> kind = MakeSaeTrainKind();
  auto given = kSmall;
  given["steps"] = "60";
  given["checkpoint_every"] = "20";
  given["architecture"] = "batchtopk";
  absl::StatusOr<v1::SaeTrainParams> p = Params<v1::SaeTrainParams>(*kind, given);
  ASSERT_TRUE(p.ok()) << p.status();

  testing::FakeJobContext straight;
  ASSERT_TRUE(kind->Run(*p, straight).ok());

  testing::FakeJobContext first;
  first.cancel_after_checks = 45;
  EXPECT_EQ(kind->Run(*p, first).code(), absl::StatusCode::kCancelled);
  testing::FakeJobContext next;
  next.UseStateDir(first.state_dir());
  ASSERT_TRUE(kind->Run(*p, next).ok());
  EXPECT_EQ(next.results.at("resumed_from_step"), 40);
  EXPECT_EQ(next.progress.front().first, 41);
  EXPECT_EQ(next.results.at("fvu"), straight.results.at("fvu"));
  EXPECT_EQ(next.artifacts.at("sae_weights.safetensors"), straight.artifacts.at("sae_weights.safetensors"));

  // A job with other parameters does not take that checkpoint.
  given["seed"] = "5";
  absl::StatusOr<v1::SaeTrainParams> other = Params<v1::SaeTrainParams>(*kind, given);
  ASSERT_TRUE(other.ok()) << other.status();
  testing::FakeJobContext unrelated;
  unrelated.UseStateDir(first.state_dir());
  ASSERT_TRUE(kind->Run(*other, unrelated).ok());
  EXPECT_EQ(unrelated.results.at("resumed_from_step"), 0);
}

std::string Text() {
  std::string text;
  for (int i = 0; i < 120; ++i) {
    text += "The quick brown fox " + std::to_string(i * 7) + " jumps over the lazy dog.\n";
  }
  return text;
}

// A tiny GPT-2 with its tokenizer saved as a Hugging Face directory.
struct TinyLm {
  TempDir dir{"lm"};
  std::shared_ptr<lm::CausalLM> model;
  TinyLm() {
    lm::BpeTrainerOptions o;
    o.vocab_size = 300;
    o.special_tokens = {"<|endoftext|>"};
    auto tok = lm::TrainByteLevelBpe({Text()}, o);
    EXPECT_TRUE(tok.ok());
    auto m = lm::CreateModel(lm::MakeGpt2Config(300, 32, 2, 4, 64), {.seed = 7});
    EXPECT_TRUE(m.ok());
    model = *m;
    fs::create_directories(dir.path / "model");
    EXPECT_TRUE(lm::SaveHfModel(*model, (dir.path / "model").string()).ok());
    EXPECT_TRUE((*tok)->SaveJson((dir.path / "model" / "tokenizer.json").string()).ok());
    std::ofstream(dir.File("corpus.txt")) << Text();
  }
};

// An SAE computing the identity: relu(x) - relu(-x) with W_enc = [I, -I].
sae::SaeModel IdentitySae(int64_t d) {
  sae::SaeModel m;
  m.architecture = sae::SaeArchitecture::kRelu;
  torch::Tensor eye = torch::eye(d);
  m.W_enc = torch::cat({eye, -eye}, 1);
  m.W_dec = torch::cat({eye, -eye}, 0);
  m.b_enc = torch::zeros({2 * d});
  m.b_dec = torch::zeros({d});
  return m;
}

TEST(SaeKinds, LmSourceTrainsAndTheIdentitySpliceChangesNothing) {
  at::set_num_threads(1);
  TinyLm lm;
  testing::FakeJobContext ctx;
  ctx.inputs["job:lm"] = (lm.dir.path / "model").string();
  ctx.inputs["dataset:text"] = lm.dir.File("corpus.txt");
  std::unique_ptr<JobKind> train = MakeSaeTrainKind();
  absl::StatusOr<v1::SaeTrainParams> p = Params<v1::SaeTrainParams>(
      *train, {{"source", "lm"}, {"model", "job:lm"}, {"corpus", "dataset:text"}, {"hook", "resid_post"},
               {"layer", "1"}, {"context_length", "32"}, {"d_sae", "128"}, {"k", "8"}, {"steps", "150"},
               {"batch_size", "128"}, {"warmup_steps", "10"}, {"lr", "0.003"}, {"eval_tokens", "512"},
               {"eval_sequences", "4"}, {"shuffle_buffer", "1024"}, {"architecture", "topk"}});
  ASSERT_TRUE(p.ok()) << p.status();
  absl::Status s = train->Run(*p, ctx);
  ASSERT_TRUE(s.ok()) << s;
  const auto& r = ctx.results;
  for (const char* f : {"ce_clean", "ce_sae", "ce_zero", "ce_loss_score", "kl_div", "fvu", "l0"}) {
    ASSERT_EQ(r.count(f), 1u) << f;
  }
  // The model is untrained (near-uniform predictions either way), so only
  // the definitions are checked here; the identity splice below is exact.
  EXPECT_NEAR(r.at("ce_loss_score"), (r.at("ce_zero") - r.at("ce_sae")) / (r.at("ce_zero") - r.at("ce_clean")),
              1e-9);
  EXPECT_GE(r.at("kl_div"), 0.0);
  EXPECT_LT(r.at("fvu"), 1.0);
  nlohmann::json cfg = nlohmann::json::parse(ctx.artifacts.at("cfg.json"));
  EXPECT_EQ(cfg["metadata"]["hook_name"], "blocks.1.hook_resid_post");
  EXPECT_EQ(cfg["metadata"]["context_size"], 32);

  // sae.eval of the identity SAE: CE equals clean, KL is 0, score is 1.
  TempDir sae_dir("identity");
  ASSERT_TRUE(sae::SaveSaeLensDir(sae_dir.path.string(), IdentitySae(32)).ok());
  testing::FakeJobContext ectx;
  ectx.inputs = ctx.inputs;
  ectx.inputs["dataset:identity"] = sae_dir.path.string();
  std::unique_ptr<JobKind> eval = MakeSaeEvalKind();
  absl::StatusOr<v1::SaeEvalParams> ep = Params<v1::SaeEvalParams>(
      *eval, {{"sae", "dataset:identity"}, {"source", "lm"}, {"model", "job:lm"}, {"corpus", "dataset:text"},
              {"hook", "blocks.1.hook_resid_post"}, {"context_length", "32"}, {"tokens", "256"},
              {"eval_sequences", "4"}});
  ASSERT_TRUE(ep.ok()) << ep.status();
  s = eval->Run(*ep, ectx);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_NEAR(ectx.results.at("ce_sae"), ectx.results.at("ce_clean"), 1e-5);
  EXPECT_NEAR(ectx.results.at("kl_div"), 0.0, 1e-6);
  EXPECT_NEAR(ectx.results.at("ce_loss_score"), 1.0, 1e-4);
  EXPECT_NEAR(ectx.results.at("fvu"), 0.0, 1e-10);
}

TEST(SaeKinds, SaeEvalRefusesAMismatchedSae) {
  TempDir dir("mismatch");
  ASSERT_TRUE(sae::SaveSaeLensDir(dir.path.string(), IdentitySae(8)).ok());
  std::unique_ptr<JobKind> eval = MakeSaeEvalKind();
  testing::FakeJobContext ctx;
  ctx.inputs["dataset:s"] = dir.path.string();
  absl::StatusOr<v1::SaeEvalParams> ep = Params<v1::SaeEvalParams>(*eval, {{"sae", "dataset:s"}});
  ASSERT_TRUE(ep.ok());
  // Synthetic data takes d_model from the SAE, so this one runs; a wrong file does not.
  EXPECT_TRUE(eval->Run(*ep, ctx).ok());
  EXPECT_FALSE(Params<v1::SaeEvalParams>(*eval, {}).ok());
  std::ofstream(dir.path / "acts.npy", std::ios::binary) << sae::NpyBytes(torch::randn({100, 5}));
  ctx.inputs["dataset:a"] = (dir.path / "acts.npy").string();
  ep = Params<v1::SaeEvalParams>(*eval, {{"sae", "dataset:s"}, {"source", "file"}, {"file", "dataset:a"}});
  ASSERT_TRUE(ep.ok());
  EXPECT_THAT(std::string(eval->Run(*ep, ctx).message()),
              HasSubstr("sae.eval parameter 'sae': has d_in 8 but the source's activations have d_model 5"));
}

}  // namespace
}  // namespace loupe

