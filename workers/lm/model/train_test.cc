// Models built from scratch: HF parameter names, initialisation, autograd
// training through the model (and through hooks), dropout modes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <set>

#include "workers/lm/model/hf_io.h"
#include "workers/lm/model/loss.h"
#include "workers/lm/model/test_util.h"

namespace loupe::lm {
namespace {

std::shared_ptr<CausalLM> Make(const ModelConfig& c, uint64_t seed = 0) {
  CreateOptions o;
  o.seed = seed;
  absl::StatusOr<std::shared_ptr<CausalLM>> m = CreateModel(c, o);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : nullptr;
}

std::set<std::string> Names(const CausalLM& m) {
  std::set<std::string> out;
  for (const auto& item : m.named_parameters()) out.insert(item.key());
  return out;
}

TEST(CreateTest, ParameterNamesAreHuggingFaceNames) {
  std::shared_ptr<CausalLM> gpt2 = Make(MakeGpt2Config(100, 32, 2, 4, 32));
  std::set<std::string> g = Names(*gpt2);
  for (const char* n : {"transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
                        "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias",
                        "transformer.h.1.attn.c_proj.weight", "transformer.h.1.mlp.c_fc.weight",
                        "transformer.h.1.mlp.c_proj.bias", "transformer.ln_f.bias"}) {
    EXPECT_EQ(g.count(n), 1u) << n;
  }
  EXPECT_EQ(g.size(), 4u + 12u * 2);  // tied: no lm_head
  EXPECT_EQ(gpt2->named_parameters()["transformer.h.0.attn.c_attn.weight"].sizes(),
            (std::vector<int64_t>{32, 96}));  // Conv1D: [in, out]

  ModelConfig lc = MakeLlamaConfig(100, 32, 2, 4, 2, 64, 32);
  std::shared_ptr<CausalLM> llama = Make(lc);
  std::set<std::string> l = Names(*llama);
  for (const char* n : {"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                        "model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight",
                        "model.layers.1.mlp.gate_proj.weight", "model.layers.1.post_attention_layernorm.weight",
                        "model.norm.weight", "lm_head.weight"}) {
    EXPECT_EQ(l.count(n), 1u) << n;
  }
  EXPECT_EQ(llama->named_parameters()["model.layers.1.self_attn.k_proj.weight"].sizes(),
            (std::vector<int64_t>{16, 32}));  // 2 kv heads x head_dim 8
  EXPECT_FALSE(llama->is_training());
}

TEST(CreateTest, InitialisationIsSeededAndFollowsHf) {
  ModelConfig c = MakeGpt2Config(500, 64, 4, 4, 32);
  std::shared_ptr<CausalLM> a = Make(c, 1), b = Make(c, 1), d = Make(c, 2);
  auto pa = a->named_parameters(), pb = b->named_parameters(), pd = d->named_parameters();
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  EXPECT_FALSE(torch::equal(pa["transformer.wte.weight"], pd["transformer.wte.weight"]));
  EXPECT_NEAR(pa["transformer.wte.weight"].std().item<double>(), 0.02, 0.001);
  EXPECT_NEAR(pa["transformer.h.0.attn.c_proj.weight"].std().item<double>(), 0.02 / std::sqrt(8.0), 0.001);
  EXPECT_TRUE(torch::equal(pa["transformer.h.0.ln_1.weight"], torch::ones({64})));
  EXPECT_TRUE(torch::equal(pa["transformer.h.0.attn.c_attn.bias"], torch::zeros({192})));
}

// lm.train trains these models: autograd must reach every parameter (the tied
// embedding through both its uses) and a few optimizer steps must fit a batch.
void TrainsOnABatch(const ModelConfig& c) {
  std::shared_ptr<CausalLM> model = Make(c, 3);
  ASSERT_NE(model, nullptr);
  model->train();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(4);
  torch::Tensor ids = torch::randint(c.vocab_size, {4, 24}, gen, torch::kLong);
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(3e-3));
  double first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    opt.zero_grad();
    torch::Tensor loss = NextTokenLoss(model->Forward(ids), ids);
    loss.backward();
    if (step == 0) {
      first = loss.item<double>();
      EXPECT_NEAR(first, std::log(static_cast<double>(c.vocab_size)), 0.5);  // ~uniform at init
      for (const auto& item : model->named_parameters()) {
        ASSERT_TRUE(item.value().grad().defined()) << item.key();
        EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0) << item.key();
      }
    }
    opt.step();
    last = loss.item<double>();
  }
  std::cout << "[ train ] " << c.model_type << ": loss " << first << " -> " << last << "\n";
  EXPECT_LT(last, 0.5 * first);
}

TEST(TrainTest, Gpt2Trains) {
  ModelConfig c = MakeGpt2Config(64, 32, 2, 4, 32);
  c.embd_pdrop = c.attn_pdrop = c.resid_pdrop = 0.0;
  TrainsOnABatch(c);
}

TEST(TrainTest, LlamaTrains) { TrainsOnABatch(MakeLlamaConfig(64, 32, 2, 4, 2, 64, 32)); }

TEST(TrainTest, GradientsFlowThroughHookReplacements) {
  std::shared_ptr<CausalLM> model = Make(MakeLlamaConfig(64, 32, 2, 4, 2, 64, 32), 5);
  torch::Tensor steer = torch::zeros({32}, torch::requires_grad());
  Hooks hooks;
  hooks.Add(
      HookPoint{HookPoint::kResidPost, 0}, [&](const torch::Tensor& a) { return a + steer; },
      torch::tensor({false, true, true, false, false, false}));
  torch::Tensor ids = torch::arange(6, torch::kLong).unsqueeze(0);
  NextTokenLoss(model->Forward(ids, hooks), ids).backward();
  ASSERT_TRUE(steer.grad().defined());
  EXPECT_GT(steer.grad().abs().sum().item<double>(), 0);
}

TEST(TrainTest, DropoutOnlyInTrainMode) {
  ModelConfig c = MakeGpt2Config(64, 32, 2, 4, 32);
  c.embd_pdrop = c.attn_pdrop = c.resid_pdrop = 0.1;
  std::shared_ptr<CausalLM> model = Make(c, 6);
  torch::NoGradGuard no_grad;
  torch::Tensor ids = torch::arange(10, torch::kLong).unsqueeze(0);
  EXPECT_TRUE(torch::equal(model->Forward(ids), model->Forward(ids)));  // eval(): deterministic
  model->train();
  EXPECT_FALSE(torch::equal(model->Forward(ids), model->Forward(ids)));
  model->eval();
}

TEST(TrainTest, TrainedModelRoundTripsThroughHfDirectory) {
  std::shared_ptr<CausalLM> model = Make(MakeLlamaConfig(64, 32, 2, 4, 2, 64, 32), 8);
  testing::TempDir tmp;
  ASSERT_TRUE(SaveHfModel(*model, tmp.path()).ok());
  absl::StatusOr<LoadedModel> back = LoadHfModel(tmp.path());
  ASSERT_TRUE(back.ok()) << back.status();
  torch::NoGradGuard no_grad;
  torch::Tensor ids = torch::arange(12, torch::kLong).unsqueeze(0);
  EXPECT_TRUE(torch::equal(model->Forward(ids), back->model->Forward(ids)));
}

}  // namespace
}  // namespace loupe::lm
