// ModelConfig parsing/writing and hook-point names and masks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "workers/lm/model/config.h"
#include "workers/lm/model/hooks.h"
#include "workers/lm/model/test_util.h"

namespace loupe::lm {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

TEST(ConfigTest, ReadsGpt2Fixture) {
  absl::StatusOr<ModelConfig> c = ReadConfigFile(testing::FixtureDir("gpt2") + "/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, Architecture::kGpt2);
  EXPECT_EQ(c->d_model, 64);
  EXPECT_EQ(c->n_layers, 2);
  EXPECT_EQ(c->n_heads, 4);
  EXPECT_EQ(c->n_kv_heads, 4);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->d_mlp, 128);
  EXPECT_EQ(c->max_positions, 64);
  EXPECT_EQ(c->vocab_size, 256);
  EXPECT_EQ(c->activation, Activation::kGeluTanh);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c->norm_eps, 1e-5);
  EXPECT_EQ(c->EosTokenIds(), std::vector<int64_t>{255});
}

TEST(ConfigTest, Gpt2NullInnerIsFourTimesWidth) {
  absl::StatusOr<ModelConfig> c = ReadConfigFile(testing::FixtureDir("gpt2_noprefix_f16") + "/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->d_mlp, 4 * 32);
  EXPECT_TRUE(c->scale_attn_by_inverse_layer_idx);
}

TEST(ConfigTest, ReadsLlamaFamily) {
  absl::StatusOr<ModelConfig> llama = ReadConfigFile(testing::FixtureDir("llama_sharded") + "/config.json");
  ASSERT_TRUE(llama.ok()) << llama.status();
  EXPECT_EQ(llama->architecture, Architecture::kLlama);
  EXPECT_EQ(llama->n_kv_heads, 2);
  EXPECT_EQ(llama->head_dim, 16);
  EXPECT_DOUBLE_EQ(llama->rope_theta, 500000.0);
  EXPECT_FALSE(llama->tie_word_embeddings);
  EXPECT_FALSE(llama->qkv_bias);

  absl::StatusOr<ModelConfig> qwen = ReadConfigFile(testing::FixtureDir("qwen2_bf16") + "/config.json");
  ASSERT_TRUE(qwen.ok()) << qwen.status();
  EXPECT_TRUE(qwen->qkv_bias);
  EXPECT_FALSE(qwen->o_bias);
  EXPECT_TRUE(qwen->tie_word_embeddings);
  EXPECT_FALSE(qwen->sliding_window.has_value());  // use_sliding_window: false

  std::vector<std::string> warnings;
  absl::StatusOr<ModelConfig> mistral =
      ReadConfigFile(testing::FixtureDir("mistral") + "/config.json", &warnings);
  ASSERT_TRUE(mistral.ok()) << mistral.status();
  EXPECT_EQ(mistral->head_dim, 16);  // explicit, not 32 / 4
  EXPECT_EQ(mistral->n_kv_heads, 1);
  EXPECT_EQ(mistral->sliding_window, 4096);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("ignored"));

  absl::StatusOr<ModelConfig> bias = ReadConfigFile(testing::FixtureDir("llama_bias_f16") + "/config.json");
  ASSERT_TRUE(bias.ok()) << bias.status();
  EXPECT_TRUE(bias->qkv_bias && bias->o_bias && bias->mlp_bias);
}

TEST(ConfigTest, ShortSlidingWindowWarnsThatLongSequencesAreRefused) {
  json j = {{"model_type", "mistral"}, {"vocab_size", 10}, {"hidden_size", 8}, {"num_hidden_layers", 1},
            {"num_attention_heads", 2}, {"num_key_value_heads", 1}, {"intermediate_size", 16},
            {"max_position_embeddings", 64}, {"sliding_window", 16}};
  std::vector<std::string> warnings;
  absl::StatusOr<ModelConfig> c = ConfigFromJson(j, &warnings);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("refused"));
}

TEST(ConfigTest, Errors) {
  absl::StatusOr<ModelConfig> bert = ConfigFromJson(json{{"model_type", "bert"}});
  EXPECT_EQ(bert.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(bert.status().message()), HasSubstr("'bert'"));
  EXPECT_THAT(std::string(bert.status().message()), HasSubstr("gpt2, llama, mistral, qwen2"));

  absl::StatusOr<ModelConfig> no_type = ConfigFromJson(json{{"n_embd", 4}});
  EXPECT_EQ(no_type.status().code(), absl::StatusCode::kInvalidArgument);

  json gpt2 = {{"model_type", "gpt2"}, {"vocab_size", 10}, {"n_layer", 1}, {"n_head", 2}, {"n_positions", 8}};
  absl::StatusOr<ModelConfig> missing = ConfigFromJson(gpt2);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("'n_embd'"));

  gpt2["n_embd"] = "wide";
  EXPECT_THAT(std::string(ConfigFromJson(gpt2).status().message()), HasSubstr("'n_embd' must be an integer"));
  gpt2["n_embd"] = 6;
  gpt2["n_head"] = 4;
  EXPECT_THAT(std::string(ConfigFromJson(gpt2).status().message()), HasSubstr("not a multiple"));
  gpt2["n_head"] = 2;
  gpt2["activation_function"] = "quick_gelu";
  EXPECT_EQ(ConfigFromJson(gpt2).status().code(), absl::StatusCode::kUnimplemented);

  json llama = {{"model_type", "llama"}, {"vocab_size", 10}, {"hidden_size", 8}, {"num_hidden_layers", 1},
                {"num_attention_heads", 2}, {"intermediate_size", 16}, {"max_position_embeddings", 64},
                {"rope_scaling", {{"rope_type", "yarn"}, {"factor", 8.0}}}};
  absl::StatusOr<ModelConfig> scaled = ConfigFromJson(llama);
  EXPECT_EQ(scaled.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(scaled.status().message()), HasSubstr("'yarn' is not supported"));
  llama["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  EXPECT_THAT(std::string(ConfigFromJson(llama).status().message()), HasSubstr("lacks 'low_freq_factor'"));
  llama["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                           {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  scaled = ConfigFromJson(llama);
  ASSERT_TRUE(scaled.ok()) << scaled.status();
  EXPECT_EQ(scaled->rope_scaling.type, ModelConfig::RopeScaling::kLlama3);
  EXPECT_EQ(scaled->rope_scaling.original_max_positions, 8192);
  llama["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  scaled = ConfigFromJson(llama);
  ASSERT_TRUE(scaled.ok()) << scaled.status();
  EXPECT_EQ(scaled->rope_scaling.type, ModelConfig::RopeScaling::kLinear);
  llama["rope_scaling"] = nullptr;
  absl::StatusOr<ModelConfig> plain = ConfigFromJson(llama);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->n_kv_heads, 2);  // absent: one per query head
  EXPECT_DOUBLE_EQ(plain->norm_eps, 1e-6);
}

TEST(ConfigTest, JsonRoundTripUsesHfNames) {
  for (const char* name : {"gpt2", "llama_sharded", "qwen2_bf16", "mistral", "llama_bias_f16"}) {
    SCOPED_TRACE(name);
    absl::StatusOr<ModelConfig> c = ReadConfigFile(testing::FixtureDir(name) + "/config.json");
    ASSERT_TRUE(c.ok()) << c.status();
    json j = ConfigToJson(*c, "bfloat16");
    EXPECT_EQ(j["torch_dtype"], "bfloat16");
    EXPECT_EQ(j["model_type"], c->model_type);
    EXPECT_EQ(j["architectures"], c->hf["architectures"]);
    EXPECT_EQ(j["eos_token_id"], c->hf["eos_token_id"]);  // fields Loupe does not interpret survive
    absl::StatusOr<ModelConfig> back = ConfigFromJson(j);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->d_model, c->d_model);
    EXPECT_EQ(back->n_layers, c->n_layers);
    EXPECT_EQ(back->n_heads, c->n_heads);
    EXPECT_EQ(back->n_kv_heads, c->n_kv_heads);
    EXPECT_EQ(back->head_dim, c->head_dim);
    EXPECT_EQ(back->d_mlp, c->d_mlp);
    EXPECT_EQ(back->max_positions, c->max_positions);
    EXPECT_EQ(back->tie_word_embeddings, c->tie_word_embeddings);
    EXPECT_EQ(back->qkv_bias, c->qkv_bias);
    EXPECT_EQ(back->mlp_bias, c->mlp_bias);
    EXPECT_DOUBLE_EQ(back->rope_theta, c->rope_theta);
    EXPECT_DOUBLE_EQ(back->norm_eps, c->norm_eps);
  }
  // A config built in code gets every field transformers needs.
  json g = ConfigToJson(MakeGpt2Config(100, 32, 2, 4, 64), "float32");
  EXPECT_EQ(g["architectures"], json::array({"GPT2LMHeadModel"}));
  for (const char* k : {"n_embd", "n_layer", "n_head", "n_positions", "layer_norm_epsilon", "vocab_size"}) {
    EXPECT_TRUE(g.contains(k)) << k;
  }
  json l = ConfigToJson(MakeLlamaConfig(100, 32, 2, 4, 2, 64, 128), "float32");
  EXPECT_EQ(l["architectures"], json::array({"LlamaForCausalLM"}));
  for (const char* k : {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                        "num_key_value_heads", "rms_norm_eps", "rope_theta", "max_position_embeddings",
                        "tie_word_embeddings", "attention_bias"}) {
    EXPECT_TRUE(l.contains(k)) << k;
  }
  EXPECT_TRUE(ConfigFromJson(l).ok());
}

TEST(HookPointTest, NamesRoundTrip) {
  for (HookPoint::Site s : {HookPoint::kResidPre, HookPoint::kAttnOut, HookPoint::kResidMid, HookPoint::kMlpOut,
                            HookPoint::kResidPost}) {
    HookPoint p{s, 11};
    absl::StatusOr<HookPoint> back = HookPoint::Parse(p.Name());
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, p);
  }
  EXPECT_EQ((HookPoint{HookPoint::kResidPost, 3}).Name(), "blocks.3.hook_resid_post");
  EXPECT_EQ((HookPoint{HookPoint::kAttnOut, 0}).Name(), "blocks.0.hook_attn_out");
  EXPECT_EQ((HookPoint{HookPoint::kMlpOut, 2}).Name(), "blocks.2.hook_mlp_out");
  EXPECT_EQ((HookPoint{HookPoint::kResidPre, 1}).Name(), "blocks.1.hook_resid_pre");
}

TEST(HookPointTest, ParseErrors) {
  for (const char* bad : {"", "resid_post", "blocks.x.hook_resid_post", "blocks.-1.hook_resid_post",
                          "blocks.1.resid_post", "blocks.1.hook_foo", "blocks.1", "blocks..hook_attn_out",
                          "blocks.1.hook_resid_post.x"}) {
    absl::StatusOr<HookPoint> p = HookPoint::Parse(bad);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(p.status().message()), HasSubstr("blocks.<layer>.hook_<site>")) << bad;
  }
  Hooks h;
  EXPECT_FALSE(h.Add("blocks.0.hook_nope", [](const torch::Tensor& a) { return a; }).ok());
  ASSERT_TRUE(h.Add("blocks.5.hook_mlp_out", [](const torch::Tensor& a) { return a; }).ok());
  EXPECT_EQ(h.MaxLayer(), 5);
  EXPECT_TRUE(h.Validate(6).ok());
  EXPECT_THAT(std::string(h.Validate(5).message()), HasSubstr("blocks.5.hook_mlp_out"));
}

TEST(HooksTest, MasksSelectAndWriteBack) {
  torch::Tensor act = torch::arange(2 * 4 * 3, torch::kFloat).reshape({2, 4, 3});
  const HookPoint p{HookPoint::kResidPost, 0};

  // [T] mask: every row's positions 1 and 3 -> [B, 2, d].
  Hooks h;
  torch::Tensor seen;
  h.Add(
      p,
      [&](const torch::Tensor& a) {
        seen = a;
        return torch::zeros_like(a);
      },
      torch::tensor({false, true, false, true}));
  torch::Tensor out = h.Run(p, act);
  EXPECT_EQ(seen.sizes(), (std::vector<int64_t>{2, 2, 3}));
  EXPECT_TRUE(torch::equal(seen, act.index({torch::indexing::Slice(), torch::tensor({1, 3})})));
  EXPECT_EQ(out.index({torch::indexing::Slice(), 1}).abs().sum().item<float>(), 0.0f);
  EXPECT_TRUE(torch::equal(out.index({torch::indexing::Slice(), 0}), act.index({torch::indexing::Slice(), 0})));
  EXPECT_TRUE(torch::equal(act, torch::arange(24, torch::kFloat).reshape({2, 4, 3})));  // input untouched

  // [B, T] mask: (row 1, position 2) only -> [1, d].
  Hooks h2;
  h2.Add(
      p, [&](const torch::Tensor& a) { return a + 100; },
      torch::tensor({{false, false, false, false}, {false, false, true, false}}));
  torch::Tensor out2 = h2.Run(p, act);
  EXPECT_EQ((out2 - act).sum().item<float>(), 300.0f);
  EXPECT_EQ((out2[1][2] - act[1][2]).min().item<float>(), 100.0f);

  // Hooks on one point run in order; Capture sees the first one's result.
  Hooks h3;
  torch::Tensor captured;
  h3.Add(p, [](const torch::Tensor& a) { return a * 2; });
  h3.Capture(p, &captured);
  h3.Run(p, act);
  EXPECT_TRUE(torch::equal(captured, act * 2));

  // Wrong replacement shape or mask shape: an error naming the hook point.
  Hooks bad;
  bad.Add(p, [](const torch::Tensor& a) { return a.sum(-1); });
  try {
    bad.Run(p, act);
    ADD_FAILURE() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("blocks.0.hook_resid_post"));
  }
  Hooks bad_mask;
  bad_mask.Add(p, [](const torch::Tensor& a) { return a; }, torch::ones({5}, torch::kBool));
  EXPECT_THROW(bad_mask.Run(p, act), c10::Error);
}

}  // namespace
}  // namespace loupe::lm
