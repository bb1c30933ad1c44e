// lm.train -> lm.eval through a real server: the eval job names the train
// job's artifact directory as model=job:ID, waits for it, and scores the
// held-out text as the train job did.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "workers/lm/jobs/corpus.h"
#include "workers/lm/jobs/test_util.h"
#include "tests/test_server.h"

namespace loupe {
namespace {

using loupe::testing::Ctx;
using loupe::testing::TestServer;

loupe::v1::JobResult Result(TestServer& ts, const std::string& id) {
  loupe::v1::GetResultRequest req;
  req.set_id(id);
  loupe::v1::JobResult res;
  grpc::Status s = ts.stub->GetResult(Ctx(ts.alice).get(), req, &res);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return res;
}

TEST(LmPipeline, TrainThenEvalByJobReference) {
  lm::testing::UseOneThread();
  const std::filesystem::path root = loupe::testing::FreshDir("lm-pipeline");
  const std::string corpus = lm::testing::LicenseCorpus().substr(0, 80000);
  lm::testing::WriteFile((root / "corpus.txt").string(), corpus);
  lm::testing::WriteFile((root / "val.txt").string(), std::string(lm::SplitHeldOut(corpus, 0.1).val));
  TestServer ts(1, {root.string()});

  loupe::v1::JobSpec train;
  loupe::v1::LmTrainParams* t = train.mutable_lm_train();
  t->set_corpus((root / "corpus.txt").string());
  t->set_vocab_size(400);
  t->set_d_model(32);
  t->set_context_length(32);
  t->set_steps(30);
  t->set_warmup_steps(5);
  loupe::v1::Job train_job = ts.Submit(ts.alice, train);

  // Submitted at once: the server holds it until the train job is done.
  loupe::v1::JobSpec eval;
  eval.mutable_lm_eval()->set_model("job:" + train_job.id());
  eval.mutable_lm_eval()->set_corpus((root / "val.txt").string());
  loupe::v1::Job eval_job = ts.Submit(ts.alice, eval);
  EXPECT_THAT(eval_job.depends_on(), ::testing::ElementsAre(train_job.id()));

  loupe::v1::Job done = ts.WaitDone(ts.alice, train_job.id(), absl::Seconds(120));
  ASSERT_EQ(done.state(), loupe::v1::SUCCEEDED) << done.error();
  loupe::v1::JobResult tr = Result(ts, train_job.id());
  std::vector<std::string> names;
  for (const auto& a : tr.artifacts()) names.push_back(a.name());
  EXPECT_THAT(names, ::testing::IsSupersetOf({"config.json", "model.safetensors", "tokenizer.json"}));
  // The loss was streamed as metrics events.
  int loss_events = 0;
  for (const loupe::v1::JobEvent& e : ts.Watch(ts.alice, train_job.id(), 0)) {
    if (e.has_metrics() && e.metrics().values().count("loss")) ++loss_events;
  }
  EXPECT_EQ(loss_events, 30);

  loupe::v1::Job eval_done = ts.WaitDone(ts.alice, eval_job.id(), absl::Seconds(60));
  ASSERT_EQ(eval_done.state(), loupe::v1::SUCCEEDED) << eval_done.error();
  loupe::v1::JobResult er = Result(ts, eval_job.id());
  EXPECT_NEAR(er.metrics().at("bits_per_byte"), tr.metrics().at("bits_per_byte"), 1e-9);
  EXPECT_GT(er.metrics().at("perplexity"), 1.0);
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace loupe
