#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "workers/lm/activations/activation_source.h"
#include "workers/lm/activations/splice.h"
#include "workers/lm/model/config.h"
#include "workers/lm/model/hf_io.h"
#include "workers/lm/model/loss.h"
#include "workers/lm/tokenizer/bpe_trainer.h"

namespace loupe::lm {
namespace {

std::string Text() {
  std::string text;
  for (int i = 0; i < 60; ++i) {
    text += "The quick brown fox " + std::to_string(i * 7) + " jumps over the lazy dog.\n";
  }
  return text;
}

class ActivationsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);
    BpeTrainerOptions o;
    o.vocab_size = 300;
    o.special_tokens = {"<|endoftext|>"};
    auto tok = TrainByteLevelBpe({Text()}, o);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = std::move(*tok);
    auto model = CreateModel(MakeGpt2Config(300, 32, 3, 4, 64), {.seed = 7});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *model;
  }

  std::unique_ptr<ActivationSource> Source(ActivationSourceOptions o) {
    auto src = ActivationSource::Create(model_, *tokenizer_, Text(), o);
    EXPECT_TRUE(src.ok()) << src.status();
    return src.ok() ? std::move(*src) : nullptr;
  }

  // The activation at `hook` from a full forward (no stop_at_layer).
  torch::Tensor FullForwardCapture(const torch::Tensor& ids, const std::string& hook) {
    torch::NoGradGuard g;
    torch::Tensor out;
    Hooks hooks;
    hooks.Capture(*HookPoint::Parse(hook), &out);
    model_->Forward(ids, hooks);
    return out;
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  std::shared_ptr<CausalLM> model_;
};

TEST_F(ActivationsTest, RowsAreTheHookActivationsInCorpusOrder) {
  ActivationSourceOptions o;
  o.hook = "blocks.1.hook_mlp_out";
  o.context_length = 16;
  o.skip_positions = 2;
  o.batch_sequences = 3;
  auto src = Source(o);
  ASSERT_NE(src, nullptr);
  const torch::Tensor seq = src->sequences();
  ASSERT_EQ(seq.size(1), 16);
  EXPECT_EQ(seq.select(1, 0).eq(*tokenizer_->eos_id()).all().item<bool>(), true) << "BOS/EOS prepended";
  EXPECT_EQ(src->rows_per_epoch(), seq.size(0) * 14);

  const torch::Tensor want = FullForwardCapture(seq.slice(0, 0, 4), o.hook).slice(1, 2).reshape({-1, 32});
  auto batch = src->Next(want.size(0));
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_TRUE(torch::allclose(batch->acts, want, 1e-5, 1e-6));
  EXPECT_TRUE(batch->token_ids.equal(seq.slice(0, 0, 4).slice(1, 2).reshape({-1})));
}

TEST_F(ActivationsTest, ResidPostOfOneLayerIsResidPreOfTheNext) {
  const torch::Tensor seq = Source({.hook = "blocks.0.hook_resid_post", .context_length = 8})->sequences();
  auto post = CollectActivations(*model_, seq, *HookPoint::Parse("blocks.0.hook_resid_post"));
  auto pre = CollectActivations(*model_, seq, *HookPoint::Parse("blocks.1.hook_resid_pre"));
  ASSERT_TRUE(post.ok() && pre.ok());
  EXPECT_TRUE(post->equal(*pre));
  EXPECT_EQ(post->sizes(), (std::vector<int64_t>{seq.size(0), 8, 32}));
}

// A source stopped after two batches and restored into a fresh source gives
// the same next batches as one that ran straight on: the same rows in the
// same order, across a refill and an epoch wrap.
TEST_F(ActivationsTest, RestoredPositionContinuesWithTheSameRows) {
  ActivationSourceOptions o;
  o.hook = "blocks.1.hook_resid_post";
  o.context_length = 16;
  o.skip_positions = 1;
  o.batch_sequences = 2;
  o.shuffle_buffer = 64;
  o.seed = 5;
  auto straight = Source(o);
  auto stopped = Source(o);
  const int64_t n = 40;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(straight->Next(n).ok());
    ASSERT_TRUE(stopped->Next(n).ok());
  }
  const std::map<std::string, torch::Tensor> position = stopped->Position();
  EXPECT_GT(position.at("pending_rows").numel(), 0);
  stopped.reset();
  auto resumed = Source(o);
  ASSERT_TRUE(resumed->Restore(position).ok());
  const int64_t batches = straight->rows_per_epoch() / n + 2;  // past the end of the corpus
  for (int64_t i = 0; i < batches; ++i) {
    auto a = straight->Next(n);
    auto b = resumed->Next(n);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_TRUE(a->token_ids.equal(b->token_ids)) << "batch " << i;
    ASSERT_TRUE(torch::allclose(a->acts, b->acts, 1e-5, 1e-6)) << "batch " << i;
  }
  EXPECT_EQ(straight->epochs(), resumed->epochs());
  EXPECT_GE(resumed->epochs(), 1);

  // A position of another corpus is refused.
  std::map<std::string, torch::Tensor> bad = position;
  bad["next_sequence"] = torch::full({1}, int64_t{1} << 40, torch::kLong);
  EXPECT_EQ(resumed->Restore(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = position;
  bad.erase("rng");
  EXPECT_EQ(resumed->Restore(bad).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ActivationsTest, ShuffledEpochIsAPermutationAndWrapsAround) {
  ActivationSourceOptions o;
  o.hook = "blocks.2.hook_resid_post";
  o.context_length = 16;
  o.batch_sequences = 1;
  auto plain = Source(o);
  const int64_t n = plain->rows_per_epoch();
  o.shuffle_buffer = n;
  o.seed = 3;
  auto shuffled = Source(o);
  auto a = plain->Next(n);
  auto b = shuffled->Next(n);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(a->token_ids.equal(b->token_ids)) << "shuffling changed the order";
  // Same multiset of rows: compare rows sorted by a fingerprint.
  auto sorted = [](const torch::Tensor& x) {
    const torch::Tensor key = x.matmul(torch::linspace(1, 2, x.size(1)));
    return x.index_select(0, std::get<1>(key.sort()));
  };
  EXPECT_TRUE(torch::allclose(sorted(a->acts), sorted(b->acts), 1e-6, 1e-6));
  EXPECT_EQ(std::get<0>(a->token_ids.sort()).equal(std::get<0>(b->token_ids.sort())), true);
  EXPECT_EQ(plain->epochs(), 1);
  auto again = plain->Next(5);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(torch::allclose(again->acts, a->acts.slice(0, 0, 5)));
}

TEST_F(ActivationsTest, BadOptionsNameTheOption) {
  auto err = [&](ActivationSourceOptions o, const std::string& text = Text()) {
    auto s = ActivationSource::Create(model_, *tokenizer_, text, o);
    EXPECT_FALSE(s.ok());
    return std::string(s.status().message());
  };
  EXPECT_NE(err({.hook = "blocks.3.hook_resid_post"}).find("'hook' names layer 3"), std::string::npos);
  EXPECT_NE(err({.hook = "resid"}).find("'hook'"), std::string::npos);
  EXPECT_NE(err({.context_length = 65}).find("'context_length'"), std::string::npos);
  EXPECT_NE(err({.context_length = 2, .skip_positions = 2}).find("'context_length'"), std::string::npos);
  EXPECT_NE(err({.context_length = 64}, "short text").find("'corpus'"), std::string::npos);
}

TEST_F(ActivationsTest, IdentitySpliceReproducesTheCleanLoss) {
  const torch::Tensor seq = Source({.context_length = 16})->sequences().slice(0, 0, 5);
  const HookPoint hook = *HookPoint::Parse("blocks.1.hook_resid_post");
  auto identity = [](const torch::Tensor& x) { return x.clone(); };
  auto zero = [](const torch::Tensor& x) { return torch::zeros_like(x); };
  SpliceOptions options;
  options.skip_positions = 1;
  options.batch_sequences = 2;
  auto r = EvaluateSplices(*model_, seq, hook, {identity, zero}, options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tokens, 5 * 14);
  EXPECT_NEAR(r->ce_spliced[0], r->ce_clean, 1e-6);
  EXPECT_NEAR(r->kl[0], 0.0, 1e-6);
  EXPECT_GT(r->kl[1], 1e-4);
  EXPECT_DOUBLE_EQ(CeLossScore(r->ce_clean, r->ce_spliced[0], r->ce_spliced[1]), 1.0);

  // ce_clean is PerTokenLoss over the predictions from positions >= 1.
  torch::NoGradGuard g;
  const double want = PerTokenLoss(model_->Forward(seq), seq).slice(1, 1).mean().item<double>();
  EXPECT_NEAR(r->ce_clean, want, 1e-5);
}

TEST_F(ActivationsTest, ReplacementOfTheWrongShapeIsAnError) {
  const torch::Tensor seq = Source({.context_length = 16})->sequences().slice(0, 0, 2);
  auto bad = [](const torch::Tensor& x) { return x.slice(1, 0, 3); };
  auto r = EvaluateSplices(*model_, seq, *HookPoint::Parse("blocks.0.hook_resid_post"), {bad});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("shape"), std::string::npos) << r.status();
}

}  // namespace
}  // namespace loupe::lm
