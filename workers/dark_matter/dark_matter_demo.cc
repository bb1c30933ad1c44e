// The demo behind docs/jobs/sae.dark_matter.md, run through the kinds
// directly (no server): lm.train on a corpus, TopK SAEs of several widths
// trained on the model's activations with workers/sae's SaeTrainer (the
// sae.train kind had no language-model source when this was written), then
// sae.dark_matter. Writes everything under OUT_DIR.
//
//   dark_matter_demo OUT_DIR CORPUS [THREADS]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "loupe/v1/kinds.pb.h"
#include "workers/dark_matter/sae_dark_matter_kind.h"
#include "workers/lm/activations/activation_source.h"
#include "workers/lm/jobs/lm_train_kind.h"
#include "workers/lm/model/hf_io.h"
#include "workers/lm/tokenizer/tokenizer.h"
#include "workers/runtime/testing/fake_job_context.h"
#include "workers/sae/sae_model.h"
#include "workers/sae/sae_trainer.h"

namespace fs = std::filesystem;
using namespace loupe;
using loupe::testing::FakeJobContext;

namespace {

// The demo model is lm.train with d_model 64 and 64-token windows; k 8 is
// 1/8 of d_model (Gemma Scope's L0 ~60 is 1/60 of 3584).
constexpr int64_t kContext = 64;
constexpr int64_t kK = 8;

void Die(const std::string& what, const absl::Status& s) {
  std::fprintf(stderr, "%s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

void SaveArtifacts(const FakeJobContext& ctx, const fs::path& dir) {
  fs::create_directories(dir);
  for (const auto& [name, bytes] : ctx.artifacts) std::ofstream(dir / name, std::ios::binary) << bytes;
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A TopK SAE on rows x, saved in SAELens layout into dir.
void TrainSae(const torch::Tensor& x, int64_t d_sae, int64_t k, int64_t steps, uint64_t seed, const fs::path& dir,
              const std::string& hook) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  sae::SaeTrainerOptions o;
  o.architecture = sae::SaeArchitecture::kTopK;
  o.d_in = x.size(1);
  o.d_sae = d_sae;
  o.k = k;
  o.lr = 2e-3;
  o.total_steps = steps;
  o.warmup_steps = 50;
  sae::SaeTrainer trainer(o, torch::kCPU, gen);
  trainer.InitDecoderBias(x.slice(0, 0, 4096));
  sae::TrainStepStats last;
  for (int64_t s = 0; s < steps; ++s) {
    last = trainer.Step(
        x.index_select(0, torch::randint(x.size(0), {256}, gen, torch::TensorOptions().dtype(torch::kInt64))));
  }
  sae::SaeModel out = trainer.Model();
  out.metadata = {{"hook_name", hook}};
  if (absl::Status s = sae::SaveSaeLensDir(dir.string(), out); !s.ok()) Die("save SAE", s);
  std::printf("  SAE %s d_sae %ld k %ld: last batch fvu %.4f dead %.3f\n", dir.filename().c_str(), (long)d_sae,
              (long)k, last.fvu, last.dead_fraction);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s OUT_DIR CORPUS [THREADS]\n", argv[0]);
    return 2;
  }
  const fs::path out = argv[1];
  const std::string corpus = argv[2];
  torch::set_num_threads(argc > 3 ? std::atoi(argv[3]) : 2);
  fs::create_directories(out);
  const auto t0 = std::chrono::steady_clock::now();

  // 1. lm.train (GPT-2, 2 layers, d_model 64, 64-token windows, 250 steps),
  // unless OUT_DIR/model already holds a model (e.g. downloaded from a server).
  if (!fs::exists(out / "model" / "model.safetensors")) {
    FakeJobContext ctx;
    ctx.inputs["corpus"] = corpus;
    loupe::v1::LmTrainParams p;
    p.set_corpus("corpus");
    p.set_d_model(64);
    p.set_context_length(kContext);
    p.set_steps(250);
    p.set_vocab_size(1024);
    p.set_warmup_steps(30);
    if (absl::Status s = MakeLmTrainKind()->Run(p, ctx); !s.ok()) Die("lm.train", s);
    SaveArtifacts(ctx, out / "model");
    std::printf("lm.train done at %.0f s\n", Seconds(t0));
  }
  auto loaded = lm::LoadHfModel((out / "model").string());
  if (!loaded.ok()) Die("load model", loaded.status());
  auto tok = lm::Tokenizer::FromJsonFile((out / "model" / "tokenizer.json").string());
  if (!tok.ok()) Die("tokenizer", tok.status());
  std::ifstream in(corpus);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

  // 2. SAEs at blocks.1.hook_resid_post (widths 128…1024, k 8) and, for
  // analysis 7, at the previous residual, attention and MLP outputs. They
  // are trained on rows of the first 40% of the sequences; the analysis uses
  // the whole corpus order from the start, so the rows overlap (as SAEs are
  // usually evaluated on their training distribution).
  const std::vector<std::pair<std::string, std::vector<int64_t>>> plan = {
      {"blocks.1.hook_resid_post", {128, 256, 512, 1024}},
      {"blocks.1.hook_resid_pre", {256}},
      {"blocks.1.hook_attn_out", {256}},
      {"blocks.1.hook_mlp_out", {256}}};
  for (const auto& [hook, widths] : plan) {
    lm::ActivationSourceOptions so;
    so.hook = hook;
    so.context_length = kContext;
    so.shuffle_buffer = 16384;
    auto src = lm::ActivationSource::Create(loaded->model, **tok, text, so);
    if (!src.ok()) Die("activation source", src.status());
    auto rows = (*src)->Next(60000);
    if (!rows.ok()) Die("activations", rows.status());
    for (int64_t w : widths) {
      const fs::path dir = out / absl::StrCat("sae_", hook.substr(9), "_", w);
      if (!fs::exists(dir / "cfg.json")) TrainSae(rows->acts, w, kK, 1500, static_cast<uint64_t>(w), dir, hook);
    }
  }
  std::printf("SAEs done at %.0f s\n", Seconds(t0));

  // 3. sae.dark_matter.
  FakeJobContext ctx;
  ctx.inputs["model"] = (out / "model").string();
  ctx.inputs["corpus"] = corpus;
  std::string saes;
  for (int64_t w : {256, 128, 512, 1024}) {
    const std::string ref = absl::StrCat("resid_", w);
    ctx.inputs[ref] = (out / absl::StrCat("sae_hook_resid_post_", w)).string();
    saes += (saes.empty() ? "" : ",") + ref;
  }
  ctx.inputs["prev"] = (out / "sae_hook_resid_pre_256").string();
  ctx.inputs["attn"] = (out / "sae_hook_attn_out_256").string();
  ctx.inputs["mlp"] = (out / "sae_hook_mlp_out_256").string();
  loupe::v1::SaeDarkMatterParams p;
  p.set_model("model");
  p.set_corpus("corpus");
  p.set_layer(1);
  p.set_saes(saes);
  p.set_prev_resid_sae("prev");
  p.set_attn_sae("attn");
  p.set_mlp_sae("mlp");
  p.set_n_tokens(40000);
  p.set_context_length(kContext);
  const auto t1 = std::chrono::steady_clock::now();
  absl::Status s = MakeSaeDarkMatterKind()->Run(p, ctx);
  for (const std::string& line : ctx.logs) std::printf("  %s\n", line.c_str());
  if (!s.ok()) Die("sae.dark_matter", s);
  SaveArtifacts(ctx, out / "report");
  std::printf("sae.dark_matter took %.0f s; report in %s\n", Seconds(t1), (out / "report").c_str());
  return 0;
}
