#include "workers/sae/sae_train_kind.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "loupe/v1/kinds.pb.h"
#include "workers/runtime/params.h"
#include "workers/sae/sae_eval.h"
#include "workers/sae/sae_metrics.h"
#include "workers/sae/saelens_format.h"
#include "workers/sae/synthetic_source.h"
#include "workers/sae/topk_sae.h"
#include "workers/sae/topk_trainer.h"

namespace loupe {
namespace {

using loupe::v1::SaeTrainParams;

constexpr char kName[] = "sae.train";

// Limits on tensor sizes, so a typo cannot ask for terabytes.
constexpr int64_t kMaxElements = int64_t{1} << 28;

// The held-out evaluation and the dead-latent window both scale with how
// rarely a feature fires: a latent tracking a feature of firing probability p
// fires about once every 1/p samples, so windows of 20/p samples make "dead"
// (no firing at all) a false alarm with probability ~e^-20.
int64_t RareEventWindow(double p, int64_t floor) {
  const double w = std::ceil(20.0 / p);
  return std::max<int64_t>(floor, static_cast<int64_t>(std::min(w, double{1 << 20})));
}

absl::Status ParamError(absl::string_view param, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(kName, " parameter '", param, "': ", what));
}

ParamSpec Number(const char* name, const char* help, const char* default_value, double min, double max) {
  ParamSpec p;
  p.name = name;
  p.help = help;
  p.default_value = default_value;
  p.min = min;
  p.max = max;
  return p;
}

// A string whose only allowed value today is its default.
ParamSpec Choice(const char* name, const char* help, const char* value) {
  ParamSpec p;
  p.name = name;
  p.help = help;
  p.default_value = value;
  p.choices = {value};
  return p;
}

class SaeTrainKind : public TypedJobKind<SaeTrainParams> {
 public:
  std::string name() const override { return kName; }
  std::string description() const override {
    return "Trains a TopK sparse autoencoder on synthetic activations with known ground-truth "
           "features (a linear-representation toy model) and reports how well it reconstructs "
           "them (fvu, l0, dead_fraction) and recovers them (mmcs). Writes the SAE in SAELens's "
           "layout: sae_weights.safetensors and cfg.json.";
  }
  std::vector<ParamSpec> params() const override {
    return {
        Choice("source", "Where activations come from: 'synthetic' (a toy model with known features)",
               "synthetic"),
        Choice("architecture", "SAE architecture: 'topk' (TopK activation, AuxK loss for dead latents)",
               "topk"),
        Number("d_model", "Dimension of the activations (the SAE's d_in)", "64", 2, 16384),
        Number("n_features", "Synthetic source: number of ground-truth feature directions", "512", 1, 1 << 20),
        Number("d_sae", "Number of SAE latents", "1024", 1, 1 << 20),
        Number("k", "Active latents per sample (TopK); at most d_sae", "6", 1, 65536),
        Number("steps", "Optimizer steps", "2000", 1, 1e7),
        Number("batch_size", "Samples per step", "256", 2, 1 << 20),
        Number("lr", "Peak Adam learning rate (linear warm-up, linear decay over the last 20% of steps)",
               "0.003", 1e-7, 1),
        Number("seed", "Seed of the synthetic data and of the SAE's initialisation", "0", 0,
               9007199254740991.0),
        Number("firing_probability", "Synthetic source: probability that a feature fires on a sample (> 0)",
               "0.005", 0, 1),
        Number("correlation",
               "Synthetic source: latent correlation of firings within groups of 16 features "
               "(Gaussian copula; 0 = independent, 1 = a group fires together)",
               "0", 0, 1),
        Number("warmup_steps", "Steps of linear learning-rate warm-up; at most steps", "100", 0, 1e7),
    };
  }
  std::vector<std::string> result_fields() const override {
    return {"fvu", "l0", "dead_fraction", "mmcs", "train_fvu", "steps", "tokens", "seconds"};
  }
  std::vector<std::string> artifact_names() const override {
    return {sae::kSaeWeightsFile, sae::kSaeConfigFile};
  }

 protected:
  absl::Status ValidateParams(const SaeTrainParams& p) const override {
    // Values are within their declared bounds here; these checks relate them.
    if (p.k() > p.d_sae()) {
      return ParamError("k", absl::StrCat("must be at most d_sae (", p.d_sae(), "), got ", p.k()));
    }
    if (p.warmup_steps() > p.steps()) {
      return ParamError("warmup_steps",
                        absl::StrCat("must be at most steps (", p.steps(), "), got ", p.warmup_steps()));
    }
    if (!(p.firing_probability() > 0)) {
      return ParamError("firing_probability", "must be greater than 0 (no feature would ever fire)");
    }
    const double weights = static_cast<double>(p.d_sae()) * static_cast<double>(p.d_model());
    if (weights > static_cast<double>(kMaxElements)) {
      return ParamError("d_sae", absl::StrCat("d_sae × d_model = ", p.d_sae(), " × ", p.d_model(),
                                              " exceeds the limit of ", kMaxElements, " weights"));
    }
    const double features = static_cast<double>(p.n_features()) * static_cast<double>(p.d_model());
    if (features > static_cast<double>(kMaxElements)) {
      return ParamError("n_features", absl::StrCat("n_features × d_model = ", p.n_features(), " × ",
                                                   p.d_model(), " exceeds the limit of ", kMaxElements));
    }
    const double activations = static_cast<double>(p.batch_size()) * static_cast<double>(p.d_sae());
    if (activations > static_cast<double>(kMaxElements)) {
      return ParamError("batch_size", absl::StrCat("batch_size × d_sae = ", p.batch_size(), " × ", p.d_sae(),
                                                   " exceeds the limit of ", kMaxElements, " activations"));
    }
    const double firings = p.firing_probability() * static_cast<double>(p.n_features());
    if (firings * static_cast<double>(p.batch_size()) < 1.0) {
      return ParamError("firing_probability",
                        absl::StrFormat("a batch would hold %.3g firing features on average "
                                        "(firing_probability × n_features × batch_size < 1); "
                                        "raise firing_probability, n_features or batch_size",
                                        firings * static_cast<double>(p.batch_size())));
    }
    return absl::OkStatus();
  }

  absl::Status RunJob(const SaeTrainParams& given, JobContext& ctx) const override {
    // The server applies defaults and checks bounds before Run; doing it again
    // costs nothing and keeps direct callers (tests, tools) safe.
    SaeTrainParams p = given;
    if (absl::Status s = ApplyDefaultsAndValidate(*this, &p); !s.ok()) return s;

    const auto started = std::chrono::steady_clock::now();
    auto seconds = [&] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    };
    // Everything below follows this device; the CPU is the default (a CUDA
    // build could pass torch::kCUDA here).
    const torch::Device device(torch::kCPU);

    ctx.Log(absl::StrFormat(
        "sae.train: TopK SAE d_in=%d d_sae=%d k=%d on synthetic data (n_features=%d, "
        "firing_probability=%g, correlation=%g); %d steps x %d samples, lr %g, warm-up %d, "
        "seed %d, device %s, threads=%d",
        p.d_model(), p.d_sae(), p.k(), p.n_features(), p.firing_probability(), p.correlation(), p.steps(),
        p.batch_size(), p.lr(), p.warmup_steps(), p.seed(), device.str(), at::get_num_threads()));
    if (p.d_sae() < p.n_features()) {
      ctx.Log(absl::StrCat("note: d_sae (", p.d_sae(), ") < n_features (", p.n_features(),
                           "): the SAE cannot represent every feature, so mmcs stays below 1"));
    }

    // Separate streams for the data and the SAE's initialisation, both from
    // `seed`: changing SAE settings leaves the data unchanged.
    const uint64_t seed = static_cast<uint64_t>(p.seed());
    at::Generator data_gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    at::Generator init_gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x9E3779B97F4A7C15ull);

    sae::SyntheticOptions so;
    so.d_model = p.d_model();
    so.n_features = p.n_features();
    so.firing_probability = p.firing_probability();
    so.correlation = p.correlation();
    sae::SyntheticSource source(so, data_gen, device);
    sae::TopKSae model(p.d_model(), p.d_sae(), p.k(), device, init_gen);
    // b_dec from the geometric median of a first batch (at least 4096 samples
    // so the median is stable); these samples are not trained on.
    model.InitDecoderBias(source.Sample(std::max<int64_t>(p.batch_size(), 4096)));

    sae::TrainerOptions to;
    to.lr = p.lr();
    to.warmup_steps = p.warmup_steps();
    to.total_steps = p.steps();
    to.dead_window_tokens = RareEventWindow(p.firing_probability(), 32768);
    sae::TopKTrainer trainer(&model, to);

    sae::StepStats last;
    for (int64_t step = 1; step <= p.steps(); ++step) {
      if (absl::Status s = ctx.CheckContinue(); !s.ok()) return s;
      last = trainer.Step(source.Sample(p.batch_size()));
      std::map<std::string, double> metrics = {{"fvu", last.fvu},
                                               {"l0", last.l0},
                                               {"dead_fraction", last.dead_fraction},
                                               {"auxk", last.auxk},
                                               {"lr", last.lr}};
      // Recovery of the ground truth costs one n_features × d_sae product:
      // every 100 steps and at the end.
      if (step % 100 == 0 || step == p.steps()) metrics["mmcs"] = sae::Mmcs(source.features(), model.W_dec());
      ctx.ReportProgress(step, p.steps());
      ctx.ReportMetrics(step, metrics);
    }

    absl::StatusOr<sae::HeldOutMetrics> eval = sae::EvaluateHeldOut(
        model, source, RareEventWindow(p.firing_probability(), 16384), [&] { return ctx.CheckContinue(); });
    if (!eval.ok()) return eval.status();
    const double mmcs = sae::Mmcs(source.features(), model.W_dec());
    const int64_t tokens = p.steps() * p.batch_size();
    ctx.SetResult("fvu", eval->fvu);
    ctx.SetResult("l0", eval->l0);
    ctx.SetResult("dead_fraction", eval->dead_fraction);
    ctx.SetResult("mmcs", mmcs);
    ctx.SetResult("train_fvu", last.fvu);
    ctx.SetResult("steps", static_cast<double>(p.steps()));
    ctx.SetResult("tokens", static_cast<double>(tokens));

    if (absl::Status s = WriteArtifacts(p, model, ctx); !s.ok()) return s;
    const double elapsed = seconds();
    ctx.SetResult("seconds", elapsed);
    ctx.Log(absl::StrFormat(
        "sae.train: done in %.1f s (%d tokens): held-out fvu %.4f, l0 %.2f, dead_fraction %.3f "
        "(over %d held-out samples), mmcs %.4f",
        elapsed, tokens, eval->fvu, eval->l0, eval->dead_fraction, eval->samples, mmcs));
    return absl::OkStatus();
  }

 private:
  static absl::Status WriteArtifacts(const SaeTrainParams& p, const sae::TopKSae& model, JobContext& ctx) {
    sae::SaeLensConfig cfg;
    cfg.d_in = p.d_model();
    cfg.d_sae = p.d_sae();
    cfg.k = p.k();
    cfg.architecture = "topk";
    // SAELens's SAEMetadata. The data is not from a model hook, so the
    // model/hook/dataset fields name the synthetic source; each sample is one
    // independent vector (context_size 1, no BOS). sae_lens_training_version
    // is null, as SAELens's own loaders set it for SAEs it did not train.
    cfg.metadata = {
        {"model_name", "synthetic"},
        {"hook_name", "synthetic"},
        {"hook_head_index", nullptr},
        {"context_size", 1},
        {"prepend_bos", false},
        {"dataset_path", "synthetic"},
        {"sae_lens_training_version", nullptr},
        {"trained_by", "loupe sae.train"},
        {"loupe_job_id", ctx.job_id()},
        {"synthetic",
         {{"n_features", p.n_features()},
          {"firing_probability", p.firing_probability()},
          {"correlation", p.correlation()},
          {"correlation_group_size", sae::SyntheticSource::kGroupSize},
          {"magnitude_range", {sae::SyntheticSource::kMinMagnitude, sae::SyntheticSource::kMaxMagnitude}},
          {"seed", p.seed()}}},
        {"training",
         {{"steps", p.steps()},
          {"batch_size", p.batch_size()},
          {"lr", p.lr()},
          {"warmup_steps", p.warmup_steps()},
          {"training_tokens", p.steps() * p.batch_size()}}},
    };
    sae::SaeLensWeights weights{model.W_enc(), model.W_dec(), model.b_enc(), model.b_dec(), {}};
    const std::string dir = (std::filesystem::path(ctx.scratch_dir()) / "saelens").string();
    if (absl::Status s = sae::WriteSaeLensDir(dir, weights, cfg); !s.ok()) return s;
    if (absl::Status s = ctx.WriteArtifactFile(sae::kSaeWeightsFile,
                                               (std::filesystem::path(dir) / sae::kSaeWeightsFile).string(),
                                               "application/octet-stream");
        !s.ok()) {
      return s;
    }
    return ctx.WriteArtifactFile(sae::kSaeConfigFile, (std::filesystem::path(dir) / sae::kSaeConfigFile).string(),
                                 "application/json");
  }
};

}  // namespace

std::unique_ptr<JobKind> MakeSaeTrainKind() { return std::make_unique<SaeTrainKind>(); }

}  // namespace loupe
