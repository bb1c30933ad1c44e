// KV cache, generation and sampling; per-token loss and bits per byte.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <set>

#include "workers/lm/model/generate.h"
#include "workers/lm/model/hf_io.h"
#include "workers/lm/model/loss.h"
#include "workers/lm/model/test_util.h"

namespace loupe::lm {
namespace {

using ::testing::HasSubstr;
using torch::indexing::Slice;

std::shared_ptr<CausalLM> Load(const std::string& name) {
  absl::StatusOr<LoadedModel> m = LoadHfModel(testing::FixtureDir(name));
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? m->model : nullptr;
}

torch::Tensor RandomIds(int64_t b, int64_t t, int64_t vocab, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randint(vocab, {b, t}, gen, torch::kLong);
}

class CacheTest : public ::testing::TestWithParam<const char*> {};

// Prefill + one token at a time through the cache gives the logits of one
// full forward pass, position by position.
TEST_P(CacheTest, CachedLogitsEqualFullForward) {
  std::shared_ptr<CausalLM> model = Load(GetParam());
  ASSERT_NE(model, nullptr);
  torch::NoGradGuard no_grad;
  torch::Tensor ids = RandomIds(2, 20, model->VocabSize(), 7);
  torch::Tensor full = model->Forward(ids);

  KVCache cache;
  ForwardOptions o;
  o.cache = &cache;
  std::vector<torch::Tensor> parts = {model->Forward(ids.index({Slice(), Slice(0, 8)}), o)};
  EXPECT_EQ(cache.length(), 8);
  parts.push_back(model->Forward(ids.index({Slice(), Slice(8, 11)}), o));  // several new tokens at once
  for (int64_t t = 11; t < 20; ++t) parts.push_back(model->Forward(ids.index({Slice(), Slice(t, t + 1)}), o));
  EXPECT_EQ(cache.length(), 20);
  ASSERT_EQ(cache.keys.size(), static_cast<size_t>(model->NumLayers()));
  EXPECT_EQ(cache.keys[0].sizes(), (std::vector<int64_t>{2, model->NumKvHeads(), 20, model->HeadDim()}));
  const double err = testing::MaxRelErr(torch::cat(parts, 1), full);
  std::cout << "[ cache ] " << GetParam() << ": cached vs full logits max relative error " << err << "\n";
  EXPECT_LE(err, 1e-5);
}

// The requirement: KV-cached greedy generation equals uncached greedy generation.
TEST_P(CacheTest, CachedGreedyGenerationEqualsUncached) {
  std::shared_ptr<CausalLM> model = Load(GetParam());
  ASSERT_NE(model, nullptr);
  torch::Tensor prompt = RandomIds(2, 6, model->VocabSize(), 11);
  GenerateOptions o;
  o.max_new_tokens = 30;
  absl::StatusOr<GenerateResult> cached = Generate(*model, prompt, o);
  o.use_cache = false;
  absl::StatusOr<GenerateResult> uncached = Generate(*model, prompt, o);
  ASSERT_TRUE(cached.ok()) << cached.status();
  ASSERT_TRUE(uncached.ok()) << uncached.status();
  EXPECT_EQ(cached->tokens.sizes(), (std::vector<int64_t>{2, 36}));
  EXPECT_TRUE(torch::equal(cached->tokens, uncached->tokens));
  EXPECT_TRUE(torch::equal(cached->tokens.index({Slice(), Slice(0, 6)}), prompt));
  EXPECT_EQ(cached->new_tokens, (std::vector<int64_t>{30, 30}));

  // And each generated token is the argmax of a plain forward on the prefix.
  torch::NoGradGuard no_grad;
  torch::Tensor logits = model->Forward(cached->tokens.index({Slice(), Slice(0, 35)}));
  EXPECT_TRUE(torch::equal(logits.index({Slice(), Slice(5, 35)}).argmax(-1),
                           cached->tokens.index({Slice(), Slice(6, 36)})));
}

INSTANTIATE_TEST_SUITE_P(Models, CacheTest, ::testing::Values("gpt2", "llama_sharded", "mistral"));

TEST(GenerateTest, SamplingIsSeededAndStops) {
  std::shared_ptr<CausalLM> model = Load("llama_sharded");
  ASSERT_NE(model, nullptr);
  torch::Tensor prompt = RandomIds(3, 4, model->VocabSize(), 3);
  GenerateOptions o;
  o.do_sample = true;
  o.max_new_tokens = 24;
  o.temperature = 1.5;
  o.top_k = 50;
  o.top_p = 0.95;
  o.seed = 42;
  absl::StatusOr<GenerateResult> a = Generate(*model, prompt, o);
  absl::StatusOr<GenerateResult> b = Generate(*model, prompt, o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(torch::equal(a->tokens, b->tokens));
  o.seed = 43;
  absl::StatusOr<GenerateResult> c = Generate(*model, prompt, o);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(torch::equal(a->tokens, c->tokens));
  o.use_cache = false;  // the cache changes nothing for sampling either
  absl::StatusOr<GenerateResult> d = Generate(*model, prompt, o);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(torch::equal(c->tokens, d->tokens));

  // top_k = 1 is greedy.
  GenerateOptions greedy;
  greedy.max_new_tokens = 10;
  GenerateOptions k1 = greedy;
  k1.do_sample = true;
  k1.top_k = 1;
  EXPECT_TRUE(torch::equal(Generate(*model, prompt, greedy)->tokens, Generate(*model, prompt, k1)->tokens));

  // Stop tokens: row 0 stops at the token it emits third; later tokens repeat it.
  absl::StatusOr<GenerateResult> g = Generate(*model, prompt, greedy);
  const int64_t stop = g->tokens[0][4 + 2].item<int64_t>();
  GenerateOptions stopping = greedy;
  stopping.stop_tokens = {stop};
  absl::StatusOr<GenerateResult> s = Generate(*model, prompt, stopping);
  ASSERT_TRUE(s.ok());
  int64_t first = 0;
  while (g->tokens[0][4 + first].item<int64_t>() != stop) ++first;
  EXPECT_EQ(s->new_tokens[0], first + 1);
  for (int64_t t = 4 + first; t < s->tokens.size(1); ++t) EXPECT_EQ(s->tokens[0][t].item<int64_t>(), stop);
  EXPECT_TRUE(model->is_training() == false);
}

TEST(GenerateTest, RejectsBadOptionsAndOverlongGpt2Sequences) {
  std::shared_ptr<CausalLM> model = Load("gpt2");
  ASSERT_NE(model, nullptr);
  torch::Tensor prompt = RandomIds(1, 10, model->VocabSize(), 1);
  GenerateOptions o;
  o.max_new_tokens = 60;  // 10 + 60 > n_positions 64
  EXPECT_THAT(std::string(Generate(*model, prompt, o).status().message()), HasSubstr("n_positions"));
  o.max_new_tokens = 54;
  EXPECT_TRUE(Generate(*model, prompt, o).ok());
  o.do_sample = true;
  o.temperature = 0;
  EXPECT_EQ(Generate(*model, prompt, o).status().code(), absl::StatusCode::kInvalidArgument);
  o.temperature = 1;
  o.top_p = 0;
  EXPECT_EQ(Generate(*model, prompt, o).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Generate(*model, torch::zeros({3}, torch::kLong), GenerateOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SampleTest, FiltersFollowTheirDefinitions) {
  // Probabilities 0.5, 0.3, 0.15, 0.05.
  torch::Tensor logits = torch::tensor({0.5f, 0.3f, 0.15f, 0.05f}).log().unsqueeze(0).repeat({4000, 1});
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  auto counts = [&](const GenerateOptions& o) {
    torch::Tensor s = SampleNextTokens(logits, o, gen);
    return torch::bincount(s, {}, 4);
  };
  GenerateOptions o;
  o.do_sample = true;
  o.top_p = 0.7;  // 0.5 < 0.7 <= 0.8: keeps the first two
  torch::Tensor c = counts(o);
  EXPECT_EQ(c[2].item<int64_t>() + c[3].item<int64_t>(), 0);
  EXPECT_NEAR(c[0].item<double>() / 4000, 0.5 / 0.8, 0.03);
  o.top_p = 0.8;  // exactly reached by two tokens: the third is dropped
  c = counts(o);
  EXPECT_EQ(c[2].item<int64_t>() + c[3].item<int64_t>(), 0);
  o.top_p = 0.4;  // the top token alone
  EXPECT_EQ(counts(o)[0].item<int64_t>(), 4000);
  o.top_p = 1.0;
  o.top_k = 3;
  c = counts(o);
  EXPECT_EQ(c[3].item<int64_t>(), 0);
  EXPECT_NEAR(c[2].item<double>() / 4000, 0.15 / 0.95, 0.03);
  o.top_k = 0;
  o.temperature = 0.05;  // sharpened almost to argmax
  EXPECT_GT(counts(o)[0].item<int64_t>(), 3990);
  o.temperature = 1.0;
  c = counts(o);
  EXPECT_NEAR(c[3].item<double>() / 4000, 0.05, 0.02);
  GenerateOptions greedy;
  EXPECT_TRUE(torch::equal(SampleNextTokens(logits, greedy, gen), torch::zeros({4000}, torch::kLong)));
}

TEST(LossTest, PerTokenLossIsNextTokenCrossEntropy) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  torch::Tensor logits = torch::randn({2, 5, 7}, gen, torch::kFloat);
  torch::Tensor ids = torch::randint(7, {2, 5}, gen, torch::kLong);
  torch::Tensor loss = PerTokenLoss(logits, ids);
  ASSERT_EQ(loss.sizes(), (std::vector<int64_t>{2, 4}));
  for (int b = 0; b < 2; ++b) {
    for (int t = 0; t < 4; ++t) {
      const double lse = logits[b][t].exp().sum().log().item<double>();
      const double want = lse - logits[b][t][ids[b][t + 1].item<int64_t>()].item<double>();
      EXPECT_NEAR(loss[b][t].item<double>(), want, 1e-5);
    }
  }
  torch::Tensor ce = torch::nn::functional::cross_entropy(logits.narrow(1, 0, 4).reshape({8, 7}),
                                                          ids.narrow(1, 1, 4).reshape({8}));
  EXPECT_NEAR(NextTokenLoss(logits, ids).item<double>(), ce.item<double>(), 1e-6);
  EXPECT_DOUBLE_EQ(BitsPerByte(100.0, 50), 100.0 / std::log(2.0) / 50.0);
}

TEST(LossTest, EvaluateTextScoresEachTokenOnce) {
  std::shared_ptr<CausalLM> model = Load("llama_sharded");
  ASSERT_NE(model, nullptr);
  torch::Tensor t = RandomIds(1, 40, model->VocabSize(), 9)[0];
  std::vector<int64_t> ids(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + 40);

  // One window: exactly PerTokenLoss of one forward pass.
  absl::StatusOr<TextEval> whole = EvaluateText(*model, ids, 123);
  ASSERT_TRUE(whole.ok()) << whole.status();
  torch::NoGradGuard no_grad;
  torch::Tensor direct = PerTokenLoss(model->Forward(t.unsqueeze(0)), t.unsqueeze(0))[0];
  ASSERT_EQ(whole->n_tokens, 39);
  ASSERT_EQ(whole->token_nats.size(), 39u);
  for (int i = 0; i < 39; ++i) EXPECT_NEAR(whole->token_nats[i], direct[i].item<float>(), 1e-5);
  EXPECT_NEAR(whole->total_nats, direct.sum().item<double>(), 1e-3);
  EXPECT_DOUBLE_EQ(whole->bits_per_byte, whole->total_nats / std::log(2.0) / 123);
  EXPECT_NEAR(whole->perplexity, std::exp(whole->total_nats / 39), 1e-9);

  // Windows of 16 advancing by 5 (batched 2 at a time): target 20 is scored
  // in the window [5, 21) (ends 16, 21, ...), with its 15 predecessors.
  EvalOptions w;
  w.window = 16;
  w.stride = 5;
  w.batch_size = 2;
  absl::StatusOr<TextEval> windowed = EvaluateText(*model, ids, 123, w);
  ASSERT_TRUE(windowed.ok()) << windowed.status();
  ASSERT_EQ(windowed->token_nats.size(), 39u);
  for (int i = 0; i < 15; ++i) EXPECT_NEAR(windowed->token_nats[i], direct[i].item<float>(), 1e-5);
  torch::Tensor win = t.slice(0, 5, 21).unsqueeze(0);
  const float target20 = PerTokenLoss(model->Forward(win), win)[0][14].item<float>();
  EXPECT_NEAR(windowed->token_nats[19], target20, 1e-5);

  EXPECT_EQ(EvaluateText(*model, {1}, 10).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EvaluateText(*model, ids, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EvaluateText(*model, {1, 9999}, 10).status().code(), absl::StatusCode::kInvalidArgument);
  w.stride = 16;
  EXPECT_EQ(EvaluateText(*model, ids, 10, w).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loupe::lm
