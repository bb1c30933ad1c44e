// lm.train through FakeJobContext: parameters and their errors, a tiny real
// training run (loss falls, beats the unigram baseline, artifacts load back),
// both architectures, a given tokenizer, determinism, bad corpora and
// cancellation.
#include "workers/lm/jobs/lm_train_kind.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <dlfcn.h>

#include <cmath>
#include <cstdlib>
#include <numeric>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "loupe/v1/kinds.pb.h"
#include "nlohmann/json.hpp"
#include "workers/lm/jobs/corpus.h"
#include "workers/lm/jobs/test_util.h"
#include "workers/lm/model/hf_io.h"
#include "workers/lm/model/loss.h"
#include "workers/lm/tokenizer/tokenizer.h"

namespace loupe::lm {
namespace {

namespace fs = std::filesystem;
using loupe::v1::LmTrainParams;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using testing::MakeParams;
using testing::ScratchDir;
using testing::SharedTrainedModel;
using testing::TinyTrainParams;
using testing::WriteFile;

std::string ErrorOf(const std::map<std::string, std::string>& given) {
  std::unique_ptr<JobKind> kind = MakeLmTrainKind();
  absl::StatusOr<LmTrainParams> p = MakeParams<LmTrainParams>(*kind, given);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << p.status();
  return std::string(p.status().message());
}

double Mean(const std::vector<double>& v, size_t from, size_t to) {
  return std::accumulate(v.begin() + from, v.begin() + to, 0.0) / static_cast<double>(to - from);
}

std::vector<double> Losses(const loupe::testing::FakeJobContext& ctx) {
  std::vector<double> out;
  for (const auto& [step, m] : ctx.metrics) out.push_back(m.at("loss"));
  return out;
}

TEST(LmTrainKind, DeclaresEveryParameter) {
  std::unique_ptr<JobKind> kind = MakeLmTrainKind();
  EXPECT_EQ(kind->name(), "lm.train");
  EXPECT_TRUE(CheckParamTable(*kind, LmTrainParams::descriptor()).ok());
  for (const ParamSpec& p : kind->params()) {
    EXPECT_FALSE(p.help.empty()) << p.name;
    const bool reference = p.name == "corpus" || p.name == "tokenizer";
    EXPECT_EQ(p.is_reference, reference) << p.name;
    EXPECT_EQ(p.default_value.empty(), reference) << p.name;
  }
  EXPECT_THAT(kind->artifact_names(),
              UnorderedElementsAre("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"));
  absl::StatusOr<LmTrainParams> p = MakeParams<LmTrainParams>(*kind, {{"corpus", "dataset:x"}});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->architecture(), "gpt2");
  EXPECT_EQ(p->d_model(), 128);
  EXPECT_EQ(p->n_layers(), 2);
  EXPECT_EQ(p->context_length(), 128);
}

TEST(LmTrainKind, RefusesBadParametersNamingThem) {
  EXPECT_THAT(ErrorOf({}), HasSubstr("lm.train parameter 'corpus': is required"));
  const std::map<std::string, std::string> ok = {{"corpus", "dataset:x"}};
  auto with = [&](std::map<std::string, std::string> extra) {
    extra.insert(ok.begin(), ok.end());
    return extra;
  };
  EXPECT_EQ(ErrorOf(with({{"n_heads", "5"}})), "lm.train parameter 'n_heads': must divide d_model (128), got 5");
  EXPECT_THAT(ErrorOf(with({{"architecture", "llama"}, {"d_model", "96"}, {"n_heads", "32"}})),
              HasSubstr("lm.train parameter 'n_heads': llama needs an even head dimension"));
  EXPECT_THAT(ErrorOf(with({{"vocab_size", "200"}})),
              HasSubstr("lm.train parameter 'vocab_size': must be at least 257 when training a tokenizer"));
  EXPECT_EQ(ErrorOf(with({{"warmup_steps", "50"}, {"steps", "10"}})),
            "lm.train parameter 'warmup_steps': must be at most steps (10), got 50");
  EXPECT_THAT(ErrorOf(with({{"batch_size", "4096"}, {"context_length", "4096"}})),
              HasSubstr("lm.train parameter 'batch_size': batch_size × context_length × vocab_size"));
  EXPECT_THAT(ErrorOf(with({{"d_model", "8192"}, {"n_heads", "64"}, {"n_layers", "64"}})),
              HasSubstr("lm.train parameter 'd_model': the model would have about"));
  // Bounds and choices from the table (checked by the platform).
  EXPECT_THAT(ErrorOf(with({{"architecture", "bert"}})), HasSubstr("'architecture'"));
  EXPECT_THAT(ErrorOf(with({{"val_fraction", "0.9"}})), HasSubstr("'val_fraction': must be at most 0.5"));
  EXPECT_THAT(ErrorOf(with({{"context_length", "4"}})), HasSubstr("'context_length': must be at least 8"));
  // With a given tokenizer vocab_size is unused, so not checked.
  std::unique_ptr<JobKind> kind = MakeLmTrainKind();
  EXPECT_TRUE(MakeParams<LmTrainParams>(*kind, with({{"tokenizer", "dataset:t"}, {"vocab_size", "10"}})).ok());
}

TEST(LmTrainKind, TrainsATinyModelBelowTheUnigramBaseline) {
  const testing::TrainedModel& m = SharedTrainedModel();
  ASSERT_TRUE(m.status.ok()) << m.status;
  const auto& r = m.ctx.results;
  for (const char* field : {"bits_per_byte", "unigram_bits_per_byte", "val_loss", "train_loss", "tokens_trained",
                            "seconds", "n_params", "vocab_size"}) {
    EXPECT_EQ(r.count(field), 1u) << field;
  }
  std::cout << "[ lm.train ] tiny gpt2 on " << m.corpus.size() << " bytes: " << m.seconds << " s, held-out "
            << r.at("bits_per_byte") << " bits/byte vs unigram " << r.at("unigram_bits_per_byte")
            << "; train_loss " << r.at("train_loss") << ", val_loss " << r.at("val_loss") << "\n";
  // Loss streamed every step, and falling: from ~ln(512) to well below.
  std::vector<double> losses = Losses(m.ctx);
  ASSERT_EQ(losses.size(), 250u);
  EXPECT_EQ(m.ctx.progress.back(), std::make_pair(int64_t{250}, int64_t{250}));
  EXPECT_NEAR(losses[0], std::log(r.at("vocab_size")), 0.3);
  EXPECT_LT(Mean(losses, 240, 250), Mean(losses, 0, 10) - 1.5);
  for (const auto& [step, metrics] : m.ctx.metrics) {
    EXPECT_EQ(metrics.count("lr"), 1u);
    EXPECT_EQ(metrics.count("tokens_per_s"), 1u);
  }
  // The point of the job: context helps, clearly.
  EXPECT_LT(r.at("bits_per_byte"), r.at("unigram_bits_per_byte") - 0.3);
  EXPECT_GT(r.at("unigram_bits_per_byte"), 1.0);
  EXPECT_EQ(r.at("tokens_trained"), 250.0 * 16 * 64);
  EXPECT_EQ(r.at("vocab_size"), 512);
}

TEST(LmTrainKind, ArtifactsAreAHuggingFaceDirectory) {
  const testing::TrainedModel& m = SharedTrainedModel();
  ASSERT_TRUE(m.status.ok()) << m.status;
  EXPECT_THAT(m.ctx.artifacts, ::testing::Contains(::testing::Key("model.safetensors")));
  const std::string dir = m.dir->File("model");

  nlohmann::json config = nlohmann::json::parse(m.ctx.artifacts.at("config.json"));
  EXPECT_EQ(config["model_type"], "gpt2");
  EXPECT_EQ(config["architectures"], nlohmann::json::array({"GPT2LMHeadModel"}));
  EXPECT_EQ(config["n_embd"], 64);
  EXPECT_EQ(config["n_positions"], 64);
  EXPECT_EQ(config["vocab_size"], 512);
  EXPECT_EQ(config["bos_token_id"], 0);  // <|endoftext|>
  EXPECT_EQ(config["eos_token_id"], 0);
  nlohmann::json tok_config = nlohmann::json::parse(m.ctx.artifacts.at("tokenizer_config.json"));
  EXPECT_EQ(tok_config["tokenizer_class"], "PreTrainedTokenizerFast");
  EXPECT_EQ(tok_config["eos_token"], "<|endoftext|>");

  absl::StatusOr<LoadedModel> loaded = LoadHfModel(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->warnings.empty());
  EXPECT_EQ(loaded->model->VocabSize(), 512);
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::FromJsonFile(dir + "/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->vocab_size(), 512);
  const std::string sample = "This License applies to any program or other work.";
  std::vector<int32_t> ids = (*tok)->Encode(sample);
  EXPECT_EQ((*tok)->Decode(ids), sample);
  EXPECT_LT(ids.size(), sample.size() / 2);  // merges learned from the licenses

  // The loaded weights are the trained ones: license text costs far less
  // than under a random model (~ln 512 = 6.2 nats a token).
  torch::NoGradGuard no_grad;
  std::vector<int64_t> scoring = ScoringIds(**tok, "the terms and conditions of this License");
  torch::Tensor t = torch::tensor(scoring).unsqueeze(0);
  const double nats = PerTokenLoss(loaded->model->Forward(t), t).mean().item<double>();
  EXPECT_LT(nats, std::log(512.0) - 1.0);
}

TEST(LmTrainKind, LlamaTrainsAndSavesAsLlama) {
  testing::UseOneThread();
  ScratchDir dir("llama");
  WriteFile(dir.File("corpus.txt"), testing::LicenseCorpus());
  loupe::testing::FakeJobContext ctx;
  ctx.inputs["dataset:c"] = dir.File("corpus.txt");
  std::map<std::string, std::string> given = TinyTrainParams("dataset:c");
  given["architecture"] = "llama";
  given["steps"] = "60";
  std::unique_ptr<JobKind> kind = MakeLmTrainKind();
  absl::StatusOr<LmTrainParams> p = MakeParams<LmTrainParams>(*kind, given);
  ASSERT_TRUE(p.ok()) << p.status();
  absl::Status s = kind->Run(*p, ctx);
  ASSERT_TRUE(s.ok()) << s;
  std::vector<double> losses = Losses(ctx);
  EXPECT_LT(Mean(losses, 50, 60), Mean(losses, 0, 10) - 0.8);
  nlohmann::json config = nlohmann::json::parse(ctx.artifacts.at("config.json"));
  EXPECT_EQ(config["model_type"], "llama");
  EXPECT_EQ(config["hidden_size"], 64);
  EXPECT_EQ(config["intermediate_size"], 192);  // 8/3·64 rounded up to a multiple of 32
  EXPECT_EQ(config["max_position_embeddings"], 64);
  EXPECT_EQ(config["bos_token_id"], 0);
  fs::create_directories(dir.path() / "model");
  for (const auto& [name, bytes] : ctx.artifacts) WriteFile(dir.File("model/" + name), bytes);
  absl::StatusOr<LoadedModel> loaded = LoadHfModel(dir.File("model"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->model->config().architecture, Architecture::kLlama);
}

TEST(LmTrainKind, UsesAGivenTokenizer) {
  const testing::TrainedModel& m = SharedTrainedModel();
  ASSERT_TRUE(m.status.ok()) << m.status;
  loupe::testing::FakeJobContext ctx;
  ctx.inputs["dataset:c"] = m.dir->File("corpus.txt");
  ctx.inputs["job:prev/tokenizer.json"] = m.dir->File("model/tokenizer.json");
  std::map<std::string, std::string> given = TinyTrainParams("dataset:c");
  given["tokenizer"] = "job:prev/tokenizer.json";
  given["vocab_size"] = "300";  // ignored
  given["steps"] = "3";
  given["warmup_steps"] = "1";
  std::unique_ptr<JobKind> kind = MakeLmTrainKind();
  absl::StatusOr<LmTrainParams> p = MakeParams<LmTrainParams>(*kind, given);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(kind->Run(*p, ctx).ok());
  EXPECT_EQ(ctx.results.at("vocab_size"), 512);
  EXPECT_EQ(ctx.artifacts.at("tokenizer.json"), m.ctx.artifacts.at("tokenizer.json"));
  // Same tokenizer, same training split: the same baseline.
  EXPECT_DOUBLE_EQ(ctx.results.at("unigram_bits_per_byte"), m.ctx.results.at("unigram_bits_per_byte"));
}

TEST(LmTrainKind, IsDeterministicPerSeed) {
  testing::UseOneThread();
  ScratchDir dir("seed");
  WriteFile(dir.File("corpus.txt"), testing::LicenseCorpus().substr(0, 60000));
  auto run = [&](const std::string& seed) {
    loupe::testing::FakeJobContext ctx;
    ctx.inputs["dataset:c"] = dir.File("corpus.txt");
    std::map<std::string, std::string> given = TinyTrainParams("dataset:c");
    given["steps"] = "8";
    given["warmup_steps"] = "2";
    given["seed"] = seed;
    std::unique_ptr<JobKind> kind = MakeLmTrainKind();
    absl::StatusOr<LmTrainParams> p = MakeParams<LmTrainParams>(*kind, given);
    EXPECT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE(kind->Run(*p, ctx).ok());
    return std::make_pair(Losses(ctx), ctx.artifacts["model.safetensors"]);
  };
  auto a = run("7"), b = run("7"), c = run("8");
  EXPECT_EQ(a.first, b.first);
  EXPECT_TRUE(a.second == b.second);
  EXPECT_NE(a.first, c.first);
}

TEST(LmTrainKind, ExplainsBadCorpora) {
  testing::UseOneThread();
  ScratchDir dir("bad");
  std::unique_ptr<JobKind> kind = MakeLmTrainKind();
  auto error = [&](const std::string& bytes, std::map<std::string, std::string> extra = {}) {
    WriteFile(dir.File("c.txt"), bytes);
    loupe::testing::FakeJobContext ctx;
    ctx.inputs["dataset:c"] = dir.File("c.txt");
    ctx.inputs["dataset:bad_tokenizer"] = dir.File("bad_tokenizer.json");
    std::map<std::string, std::string> given = TinyTrainParams("dataset:c");
    for (const auto& [k, v] : extra) given[k] = v;
    absl::StatusOr<LmTrainParams> p = MakeParams<LmTrainParams>(*kind, given);
    EXPECT_TRUE(p.ok()) << p.status();
    absl::Status s = kind->Run(*p, ctx);
    EXPECT_FALSE(s.ok());
    EXPECT_TRUE(ctx.artifacts.empty());
    return std::string(s.message());
  };
  EXPECT_THAT(error(""), HasSubstr("lm.train parameter 'corpus': " + dir.File("c.txt") + " is empty"));
  EXPECT_THAT(error("Hello \xff world, fine text"),
              HasSubstr("lm.train parameter 'corpus': " + dir.File("c.txt") + " is not valid UTF-8 (byte 6 = 0xff)"));
  EXPECT_THAT(error("x"), HasSubstr("lm.train parameter 'corpus': is too small (1 bytes)"));
  EXPECT_THAT(error(std::string(2000, 'a') + " short text"),
              HasSubstr("lm.train parameter 'corpus': its training split"));
  WriteFile(dir.File("bad_tokenizer.json"), "{\"model\": {\"type\": \"Unigram\"}}");
  EXPECT_THAT(error(testing::LicenseCorpus().substr(0, 20000), {{"tokenizer", "dataset:bad_tokenizer"}}),
              HasSubstr("lm.train parameter 'tokenizer': "));
  WriteFile(dir.File("bad_tokenizer.json"), "not json");
  EXPECT_THAT(error(testing::LicenseCorpus().substr(0, 20000), {{"tokenizer", "dataset:bad_tokenizer"}}),
              HasSubstr("lm.train parameter 'tokenizer': "));
  EXPECT_THAT(error("some text", {{"corpus", "dataset:missing"}}), HasSubstr("lm.train parameter 'corpus': "));
}

TEST(LmTrainKind, CancellationStopsWithinAStep) {
  testing::UseOneThread();
  ScratchDir dir("cancel");
  WriteFile(dir.File("corpus.txt"), testing::LicenseCorpus());
  std::unique_ptr<JobKind> kind = MakeLmTrainKind();
  // Default model and batch: a step must take well under a second.
  absl::StatusOr<LmTrainParams> p = MakeParams<LmTrainParams>(*kind, {{"corpus", "dataset:c"}});
  ASSERT_TRUE(p.ok());
  loupe::testing::FakeJobContext ctx;
  ctx.inputs["dataset:c"] = dir.File("corpus.txt");
  ctx.cancel_after_checks = 8;
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = kind->Run(*p, ctx);
  const double seconds = testing::Seconds(start);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(ctx.results.empty());
  EXPECT_TRUE(ctx.artifacts.empty());
  ASSERT_GE(ctx.progress.size(), 2u);  // a few steps ran before the cancel
  const double per_step = seconds / static_cast<double>(ctx.progress.size());
  std::cout << "[ lm.train ] cancelled after " << ctx.progress.size() << " default steps in " << seconds
            << " s (incl. tokenizer training)\n";
  EXPECT_LT(per_step, 1.0);
  EXPECT_LT(seconds, 10.0);
}

// Not a test: the measured default run of docs/jobs/lm.train.md. Trains with
// every default on the text file $LOUPE_LM_CORPUS (default: the license
// corpus) with $LOUPE_LM_THREADS threads (default 2) and prints the results;
// $LOUPE_LM_PARAMS ("k=v,k=v") overrides parameters.
//   LOUPE_LM_CORPUS=corpus.txt build/tests/lm_jobs_test
//     --gtest_also_run_disabled_tests --gtest_filter='*DISABLED_DefaultRun'
TEST(LmTrainKind, DISABLED_DefaultRun) {
  const char* corpus = std::getenv("LOUPE_LM_CORPUS");
  const char* threads = std::getenv("LOUPE_LM_THREADS");
  const char* extra = std::getenv("LOUPE_LM_PARAMS");
  ScratchDir dir("default");
  std::string path = corpus != nullptr ? corpus : dir.File("licenses.txt");
  if (corpus == nullptr) WriteFile(path, testing::LicenseCorpus());
  const int n_threads = threads != nullptr ? std::atoi(threads) : 2;
  at::set_num_threads(n_threads);
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n_threads);

  std::map<std::string, std::string> given = {{"corpus", "dataset:c"}};
  if (extra != nullptr) {
    for (absl::string_view kv : absl::StrSplit(extra, ',', absl::SkipEmpty())) {
      std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
      given[p.first] = p.second;
    }
  }
  std::unique_ptr<JobKind> kind = MakeLmTrainKind();
  absl::StatusOr<LmTrainParams> p = MakeParams<LmTrainParams>(*kind, given);
  ASSERT_TRUE(p.ok()) << p.status();
  loupe::testing::FakeJobContext ctx;
  ctx.inputs["dataset:c"] = path;
  ctx.threads_ = n_threads;
  absl::Status s = kind->Run(*p, ctx);
  for (const std::string& line : ctx.logs) std::cout << "  log: " << line << "\n";
  ASSERT_TRUE(s.ok()) << s;
  for (const auto& [step, m] : ctx.metrics) {
    if (m.count("val_loss")) {
      std::cout << absl::StrFormat("  step %5d  loss %.4f  val_loss(probe) %.4f  lr %.2e  tokens/s %.0f\n", step,
                                   m.at("loss"), m.at("val_loss"), m.at("lr"), m.at("tokens_per_s"));
    }
  }
  for (const auto& [k, v] : ctx.results) std::cout << "  result " << k << " = " << v << "\n";
}

}  // namespace
}  // namespace loupe::lm
