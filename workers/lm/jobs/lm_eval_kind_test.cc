// lm.eval through FakeJobContext: it reproduces lm.train's held-out
// bits_per_byte on the same text, and explains bad inputs.
#include "workers/lm/jobs/lm_eval_kind.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "loupe/v1/kinds.pb.h"
#include "workers/lm/jobs/test_util.h"

namespace loupe::lm {
namespace {

using loupe::v1::LmEvalParams;
using ::testing::HasSubstr;
using testing::MakeParams;
using testing::SharedTrainedModel;

// Runs lm.eval with the shared trained model as job:train.
struct EvalRun {
  loupe::testing::FakeJobContext ctx;
  absl::Status status;
};
std::unique_ptr<EvalRun> RunEval(const std::map<std::string, std::string>& given) {
  const testing::TrainedModel& m = SharedTrainedModel();
  auto run = std::make_unique<EvalRun>();
  run->ctx.inputs["job:train"] = m.dir->File("model");
  run->ctx.inputs["job:train/config.json"] = m.dir->File("model/config.json");
  run->ctx.inputs["dataset:val"] = m.dir->File("val.txt");
  run->ctx.inputs["dataset:corpus"] = m.dir->File("corpus.txt");
  run->ctx.inputs["/nowhere"] = m.dir->path().string();  // a directory, but no model
  std::unique_ptr<JobKind> kind = MakeLmEvalKind();
  absl::StatusOr<LmEvalParams> p = MakeParams<LmEvalParams>(*kind, given);
  run->status = p.ok() ? kind->Run(*p, run->ctx) : p.status();
  return run;
}

TEST(LmEvalKind, DeclaresEveryParameter) {
  std::unique_ptr<JobKind> kind = MakeLmEvalKind();
  EXPECT_EQ(kind->name(), "lm.eval");
  EXPECT_TRUE(CheckParamTable(*kind, LmEvalParams::descriptor()).ok());
  for (const ParamSpec& p : kind->params()) EXPECT_FALSE(p.help.empty()) << p.name;
  absl::StatusOr<LmEvalParams> p = MakeParams<LmEvalParams>(*kind, {{"corpus", "dataset:x"}});
  EXPECT_THAT(p.status().message(), HasSubstr("lm.eval parameter 'model': is required"));
  p = MakeParams<LmEvalParams>(*kind, {{"model", "job:x"}});
  EXPECT_THAT(p.status().message(), HasSubstr("lm.eval parameter 'corpus': is required"));
  p = MakeParams<LmEvalParams>(*kind, {{"model", "job:x"}, {"corpus", "dataset:x"}, {"context_length", "1"}});
  EXPECT_THAT(p.status().message(), HasSubstr("lm.eval parameter 'context_length'"));
}

TEST(LmEvalKind, ReproducesTheTrainJobsHeldOutBitsPerByte) {
  const testing::TrainedModel& m = SharedTrainedModel();
  ASSERT_TRUE(m.status.ok()) << m.status;
  std::unique_ptr<EvalRun> run = RunEval({{"model", "job:train"}, {"corpus", "dataset:val"}});
  ASSERT_TRUE(run->status.ok()) << run->status;
  const auto& r = run->ctx.results;
  std::cout << "[ lm.eval ] held-out: " << r.at("bits_per_byte") << " bits/byte, perplexity " << r.at("perplexity")
            << " over " << r.at("tokens") << " tokens (train job: " << m.ctx.results.at("bits_per_byte") << ")\n";
  // Same ids, windows, batches and summation order: equal to float rounding.
  EXPECT_NEAR(r.at("bits_per_byte"), m.ctx.results.at("bits_per_byte"), 1e-9);
  EXPECT_NEAR(r.at("nats_per_token"), m.ctx.results.at("val_loss"), 1e-9);
  EXPECT_NEAR(r.at("perplexity"), std::exp(r.at("nats_per_token")), 1e-9);
  EXPECT_EQ(r.at("bytes"), static_cast<double>(m.val.size()));
  EXPECT_GT(r.at("tokens"), m.val.size() / 8.0);
  EXPECT_FALSE(run->ctx.progress.empty());
}

TEST(LmEvalKind, MaxBytesAndContextLength) {
  std::unique_ptr<EvalRun> run =
      RunEval({{"model", "job:train"}, {"corpus", "dataset:corpus"}, {"max_bytes", "5000"}, {"context_length", "32"}});
  ASSERT_TRUE(run->status.ok()) << run->status;
  EXPECT_EQ(run->ctx.results.at("bytes"), 5000);
  // Half the trained context scores each token with less context: worse.
  std::unique_ptr<EvalRun> full = RunEval({{"model", "job:train"}, {"corpus", "dataset:corpus"}, {"max_bytes", "5000"}});
  ASSERT_TRUE(full->status.ok()) << full->status;
  EXPECT_LT(full->ctx.results.at("bits_per_byte"), run->ctx.results.at("bits_per_byte"));
}

TEST(LmEvalKind, ExplainsBadInputs) {
  auto error = [](const std::map<std::string, std::string>& given) {
    std::unique_ptr<EvalRun> run = RunEval(given);
    EXPECT_FALSE(run->status.ok());
    return std::string(run->status.message());
  };
  EXPECT_THAT(error({{"model", "job:train"}, {"corpus", "dataset:val"}, {"context_length", "65"}}),
              HasSubstr("lm.eval parameter 'context_length': 65 exceeds the model's 64 positions (n_positions)"));
  EXPECT_THAT(error({{"model", "job:train/config.json"}, {"corpus", "dataset:val"}}),
              HasSubstr("lm.eval parameter 'model': job:train/config.json is not a directory"));
  EXPECT_THAT(error({{"model", "job:missing"}, {"corpus", "dataset:val"}}), HasSubstr("lm.eval parameter 'model': "));
  EXPECT_THAT(error({{"model", "job:train"}, {"corpus", "dataset:nothing"}}),
              HasSubstr("lm.eval parameter 'corpus': "));
  // A directory without a model: the loader's error, under the parameter.
  EXPECT_THAT(error({{"model", "/nowhere"}, {"corpus", "dataset:val"}}), HasSubstr("lm.eval parameter 'model': "));
  EXPECT_THAT(error({{"model", "job:train"}, {"corpus", "dataset:val"}, {"tokenizer", "dataset:corpus"}}),
              HasSubstr("lm.eval parameter 'tokenizer': "));
}

}  // namespace
}  // namespace loupe::lm
