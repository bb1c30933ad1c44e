// Agreement with the independent float64 reference (testdata/make_reference.py)
// on every fixture: logits, hooked activations, a patched forward; loading
// errors; save -> load round trips, and the reference loading Loupe's saves.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <iostream>

#include "workers/common/safetensors_torch.h"
#include "workers/lm/model/hf_io.h"
#include "workers/lm/model/test_util.h"

namespace loupe::lm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::MaxRelErr;

constexpr double kTol = 1e-4;           // the required agreement
constexpr int kPatchPosition = 5;       // make_reference.py's PATCH_POSITION
const char* const kFixtures[] = {"gpt2", "gpt2_noprefix_f16", "llama_sharded", "qwen2_bf16", "mistral",
                                 "llama_bias_f16", "llama3_rope"};

safetensors::TensorMap Expected(const std::string& name) {
  absl::StatusOr<safetensors::TensorMap> m = safetensors::LoadTensors(testing::ExpectedPath(name));
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : safetensors::TensorMap{};
}

std::shared_ptr<CausalLM> Load(const std::string& dir, LoadOptions o = {}) {
  absl::StatusOr<LoadedModel> m = LoadHfModel(dir, o);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? m->model : nullptr;
}

class ReferenceTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ReferenceTest, LogitsAndActivationsMatch) {
  const std::string name = GetParam();
  std::shared_ptr<CausalLM> model = Load(testing::FixtureDir(name));
  ASSERT_NE(model, nullptr);
  safetensors::TensorMap exp = Expected(name);
  torch::NoGradGuard no_grad;
  const torch::Tensor& ids = exp.at("input_ids");

  Hooks hooks;
  std::map<std::string, torch::Tensor> seen;
  for (const auto& [key, t] : exp) {
    if (key.rfind("blocks.", 0) != 0) continue;
    absl::StatusOr<HookPoint> p = HookPoint::Parse(key);
    ASSERT_TRUE(p.ok()) << p.status();
    hooks.Capture(*p, &seen[key]);
  }
  torch::Tensor logits = model->Forward(ids, hooks);
  ASSERT_EQ(logits.sizes(), exp.at("logits").sizes());
  EXPECT_EQ(logits.scalar_type(), torch::kFloat);
  const double err = MaxRelErr(logits, exp.at("logits"));
  std::cout << "[ reference ] " << name << ": logits max relative error " << err << "\n";
  EXPECT_LE(err, kTol);
  for (const auto& [key, act] : seen) {
    ASSERT_TRUE(act.defined()) << key;
    const double e = MaxRelErr(act, exp.at(key));
    std::cout << "[ reference ] " << name << ": " << key << " max relative error " << e << "\n";
    EXPECT_LE(e, kTol) << key;
  }

  // Zeroing the residual stream after block 0 at one position, through a
  // [T] position mask, matches the reference's patched run.
  const int64_t T = ids.size(1);
  torch::Tensor mask = torch::zeros({T}, torch::kBool);
  mask[kPatchPosition] = true;
  Hooks patch;
  patch.Add(
      HookPoint{HookPoint::kResidPost, 0}, [](const torch::Tensor& a) { return torch::zeros_like(a); }, mask);
  torch::Tensor patched = model->Forward(ids, patch);
  const double perr = MaxRelErr(patched, exp.at("logits_patched"));
  std::cout << "[ reference ] " << name << ": patched logits max relative error " << perr << "\n";
  EXPECT_LE(perr, kTol);
  // Causality: earlier positions are untouched, the patched one changes.
  using torch::indexing::Slice;
  EXPECT_LE(MaxRelErr(patched.index({Slice(), Slice(0, kPatchPosition)}),
                      logits.index({Slice(), Slice(0, kPatchPosition)})),
            1e-6);
  EXPECT_GT((patched.select(1, kPatchPosition) - logits.select(1, kPatchPosition)).abs().max().item<float>(), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ReferenceTest, ::testing::ValuesIn(kFixtures));

TEST(HookTest, IdentityChangesNothingAndZeroingChangesLogits) {
  for (const char* name : {"gpt2", "llama_sharded"}) {
    SCOPED_TRACE(name);
    std::shared_ptr<CausalLM> model = Load(testing::FixtureDir(name));
    ASSERT_NE(model, nullptr);
    torch::NoGradGuard no_grad;
    torch::Tensor ids = Expected(name).at("input_ids");
    torch::Tensor base = model->Forward(ids);

    // Identity replacements (a fresh copy) at every point of every layer.
    Hooks identity;
    for (int l = 0; l < model->NumLayers(); ++l) {
      for (HookPoint::Site s : {HookPoint::kResidPre, HookPoint::kAttnOut, HookPoint::kResidMid,
                                HookPoint::kMlpOut, HookPoint::kResidPost}) {
        identity.Add(HookPoint{s, l}, [](const torch::Tensor& a) { return a.clone(); });
        identity.Add(
            HookPoint{s, l}, [](const torch::Tensor& a) { return a.clone(); },
            torch::tensor({true, false, true, false, true, false, true, false, true, false, true, false, true, false,
                           true, false}));
      }
    }
    EXPECT_TRUE(torch::equal(model->Forward(ids, identity), base));

    Hooks zero;
    ASSERT_TRUE(zero.Add("blocks.0.hook_resid_post", [](const torch::Tensor& a) { return torch::zeros_like(a); }).ok());
    EXPECT_GT((model->Forward(ids, zero) - base).abs().max().item<float>(), 1e-2);

    // stop_at_layer returns the residual stream entering that block.
    ForwardOptions stop;
    stop.stop_at_layer = 1;
    torch::Tensor resid;
    Hooks capture;
    capture.Capture(HookPoint{HookPoint::kResidPost, 0}, &resid);
    model->Forward(ids, capture);
    EXPECT_TRUE(torch::allclose(model->Forward(ids, stop), resid));
  }
}

TEST(HookTest, ForwardRejectsHooksOnMissingLayersAndBadIds) {
  std::shared_ptr<CausalLM> model = Load(testing::FixtureDir("gpt2"));
  ASSERT_NE(model, nullptr);
  torch::NoGradGuard no_grad;
  torch::Tensor ids = torch::zeros({1, 4}, torch::kLong);
  Hooks hooks;
  hooks.Add(HookPoint{HookPoint::kResidPost, 2}, [](const torch::Tensor& a) { return a; });
  ForwardOptions o;
  o.hooks = &hooks;
  EXPECT_THAT(std::string(model->CheckForward(ids, o).message()), HasSubstr("blocks.2.hook_resid_post"));
  EXPECT_THROW(model->Forward(ids, hooks), c10::Error);
  EXPECT_THAT(std::string(model->CheckForward(torch::full({1, 2}, 256, torch::kLong)).message()),
              HasSubstr("outside the vocabulary"));
  EXPECT_THAT(std::string(model->CheckForward(torch::zeros({1, 65}, torch::kLong)).message()),
              HasSubstr("n_positions"));
  EXPECT_FALSE(model->CheckForward(torch::zeros({4}, torch::kLong)).ok());
}

// --- loading errors --------------------------------------------------------

// Copies fixture `name` to `dir`, letting `edit` change the tensors and config.
void CopyFixture(const std::string& name, const std::string& dir,
                 const std::function<void(safetensors::TensorMap&, nlohmann::json&)>& edit) {
  absl::StatusOr<safetensors::TensorMap> t = safetensors::LoadTensors(testing::FixtureDir(name) + "/model.safetensors");
  ASSERT_TRUE(t.ok()) << t.status();
  std::ifstream in(testing::FixtureDir(name) + "/config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  edit(*t, config);
  ASSERT_TRUE(safetensors::SaveTensors(dir + "/model.safetensors", *t, {{"format", "pt"}}).ok());
  std::ofstream(dir + "/config.json") << config.dump(2);
}

TEST(LoadErrorTest, MissingTensorNamesIt) {
  testing::TempDir tmp;
  CopyFixture("gpt2", tmp.path(), [](safetensors::TensorMap& t, nlohmann::json&) {
    t.erase("transformer.h.1.mlp.c_fc.bias");
  });
  absl::StatusOr<LoadedModel> m = LoadHfModel(tmp.path());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("'transformer.h.1.mlp.c_fc.bias'"));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("'h.1.mlp.c_fc.bias'"));  // the other name tried
}

TEST(LoadErrorTest, ShapeMismatchSaysExpectedAndGot) {
  testing::TempDir tmp;
  CopyFixture("llama_bias_f16", tmp.path(), [](safetensors::TensorMap&, nlohmann::json& c) {
    c["num_key_value_heads"] = 1;  // k_proj: the file has [2 * 8, 32], the config now says [8, 32]
  });
  absl::StatusOr<LoadedModel> m = LoadHfModel(tmp.path());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("'model.layers.0.self_attn.k_proj.weight' in " + tmp.path() +
                        "/model.safetensors has shape [16, 32], expected [8, 32]"));
}

TEST(LoadErrorTest, UnsupportedArchitectureAndMissingFiles) {
  testing::TempDir tmp;
  CopyFixture("gpt2", tmp.path(), [](safetensors::TensorMap&, nlohmann::json& c) { c["model_type"] = "bert"; });
  absl::StatusOr<LoadedModel> m = LoadHfModel(tmp.path());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("unsupported architecture"));

  EXPECT_EQ(LoadHfModel(tmp / "nowhere").status().code(), absl::StatusCode::kNotFound);
  testing::TempDir only_config;
  fs::copy_file(testing::FixtureDir("gpt2") + "/config.json", only_config / "config.json");
  absl::StatusOr<LoadedModel> no_weights = LoadHfModel(only_config.path());
  EXPECT_EQ(no_weights.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(no_weights.status().message()), HasSubstr("model.safetensors"));
}

TEST(LoadErrorTest, UnexpectedTensorsRefusedUnlessAllowed) {
  testing::TempDir tmp;
  CopyFixture("mistral", tmp.path(), [](safetensors::TensorMap& t, nlohmann::json&) {
    t["model.layers.7.self_attn.q_proj.weight"] = torch::zeros({2, 2});
    t["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch::zeros({8});  // always skipped
  });
  absl::StatusOr<LoadedModel> m = LoadHfModel(tmp.path());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("model.layers.7.self_attn.q_proj.weight"));
  EXPECT_THAT(std::string(m.status().message()), ::testing::Not(HasSubstr("inv_freq")));
  LoadOptions allow;
  allow.allow_unexpected_tensors = true;
  absl::StatusOr<LoadedModel> ok = LoadHfModel(tmp.path(), allow);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_THAT(ok->warnings, ::testing::Contains(HasSubstr("model.layers.7.self_attn.q_proj.weight")));
}

TEST(LoadErrorTest, IndexPointingAtWrongShardIsDataLoss) {
  testing::TempDir tmp;
  for (const auto& e : fs::directory_iterator(testing::FixtureDir("llama_sharded"))) {
    fs::copy_file(e.path(), tmp / e.path().filename().string());
  }
  std::ifstream in(tmp / "model.safetensors.index.json");
  nlohmann::json index = nlohmann::json::parse(in);
  in.close();
  index["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors";
  std::ofstream(tmp / "model.safetensors.index.json") << index.dump();
  EXPECT_EQ(LoadHfModel(tmp.path()).status().code(), absl::StatusCode::kDataLoss);
}

// --- dtypes and round trips -------------------------------------------------

TEST(DtypeTest, CheckpointDtypeAndReducedPrecisionCompute) {
  LoadOptions keep;
  keep.dtype = std::nullopt;
  std::shared_ptr<CausalLM> bf16 = Load(testing::FixtureDir("qwen2_bf16"), keep);
  ASSERT_NE(bf16, nullptr);
  EXPECT_EQ(bf16->dtype(), torch::kBFloat16);
  std::shared_ptr<CausalLM> f32 = Load(testing::FixtureDir("qwen2_bf16"));
  EXPECT_EQ(f32->dtype(), torch::kFloat);

  // Computing in bf16 stays close to the float64 reference (bf16 has 8 bits
  // of mantissa, so only loosely).
  torch::NoGradGuard no_grad;
  safetensors::TensorMap exp = Expected("qwen2_bf16");
  const double err = MaxRelErr(bf16->Forward(exp.at("input_ids")), exp.at("logits"));
  std::cout << "[ reference ] qwen2_bf16 computed in bfloat16: max relative error " << err << "\n";
  EXPECT_LE(err, 0.1);
}

TEST(RoundTripTest, SaveThenLoadIsExact) {
  for (const char* name : kFixtures) {
    SCOPED_TRACE(name);
    std::shared_ptr<CausalLM> model = Load(testing::FixtureDir(name));
    ASSERT_NE(model, nullptr);
    testing::TempDir single, sharded;
    ASSERT_TRUE(SaveHfModel(*model, single.path()).ok());
    SaveOptions shard_opts;
    shard_opts.max_shard_bytes = 16 * 1024;  // every fixture needs several shards
    shard_opts.dtype = torch::kBFloat16;
    ASSERT_TRUE(SaveHfModel(*model, sharded.path(), shard_opts).ok());
    EXPECT_TRUE(fs::exists(single / "model.safetensors"));
    EXPECT_FALSE(fs::exists(sharded / "model.safetensors"));
    EXPECT_TRUE(fs::exists(sharded / "model.safetensors.index.json"));
    int shard_files = 0;
    for (const auto& e : fs::directory_iterator(sharded.path())) {
      shard_files += e.path().filename().string().rfind("model-0000", 0) == 0;
    }
    EXPECT_GE(shard_files, 2);

    std::shared_ptr<CausalLM> again = Load(single.path());
    std::shared_ptr<CausalLM> again_bf16 = Load(sharded.path());
    ASSERT_NE(again, nullptr);
    ASSERT_NE(again_bf16, nullptr);
    auto a = model->named_parameters(), b = again->named_parameters(), c = again_bf16->named_parameters();
    ASSERT_EQ(a.size(), b.size());
    for (const auto& item : a) {
      EXPECT_TRUE(torch::equal(item.value(), b[item.key()])) << item.key();
      EXPECT_TRUE(torch::equal(item.value().to(torch::kBFloat16).to(torch::kFloat), c[item.key()])) << item.key();
    }
    torch::NoGradGuard no_grad;
    torch::Tensor ids = Expected(name).at("input_ids");
    EXPECT_TRUE(torch::equal(model->Forward(ids), again->Forward(ids)));

    // Saving again over a sharded directory as one file removes the shards.
    ASSERT_TRUE(SaveHfModel(*model, sharded.path()).ok());
    EXPECT_TRUE(fs::exists(sharded / "model.safetensors"));
    EXPECT_FALSE(fs::exists(sharded / "model.safetensors.index.json"));
    EXPECT_FALSE(fs::exists(sharded / "model-00001-of-00002.safetensors"));
  }
}

// The reference, with the loading rules transformers applies (exact tensor
// set and shapes, "format": "pt" metadata, architectures, torch_dtype),
// reads directories Loupe saved and reproduces the expected logits.
TEST(RoundTripTest, ReferenceLoadsLoupeSavedDirectories) {
  if (std::system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 with torch and numpy is not available";
  }
  testing::TempDir tmp;
  std::string cmd = "/usr/bin/python3 " + testing::TestdataDir() + "/make_reference.py";
  for (const char* name : kFixtures) {
    std::shared_ptr<CausalLM> model = Load(testing::FixtureDir(name));
    ASSERT_NE(model, nullptr);
    const std::string stored = model->config().hf["torch_dtype"].get<std::string>();
    SaveOptions o;  // in the fixture's own dtype, so values are exact
    o.dtype = stored == "bfloat16" ? torch::kBFloat16 : stored == "float16" ? torch::kHalf : torch::kFloat;
    if (std::string(name).find("llama") != std::string::npos) o.max_shard_bytes = 100 * 1000;
    ASSERT_TRUE(SaveHfModel(*model, tmp / name, o).ok());
    cmd += " --check " + (tmp / name) + " " + testing::ExpectedPath(name);
  }
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  char buf[512];
  while (fgets(buf, sizeof buf, p) != nullptr) output += buf;
  const int rc = pclose(p);
  std::cout << output;
  EXPECT_EQ(rc, 0) << output;
  EXPECT_THAT(output, ::testing::Not(HasSubstr("FAIL")));
}

}  // namespace
}  // namespace loupe::lm
