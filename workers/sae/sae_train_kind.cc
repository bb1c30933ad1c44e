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
#include "workers/common/safetensors.h"
#include "workers/common/safetensors_torch.h"
#include "workers/runtime/params.h"
#include "workers/sae/sae_evaluation.h"
#include "workers/sae/sae_kind_util.h"
#include "workers/sae/sae_metrics.h"
#include "workers/sae/sae_model.h"
#include "workers/sae/sae_sources.h"
#include "workers/sae/sae_trainer.h"
#include "workers/sae/saelens_format.h"

namespace loupe {
namespace {

namespace fs = std::filesystem;
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

using sae::ChoiceParam;
using sae::NumberParam;
using sae::TextParam;

class SaeTrainKind : public TypedJobKind<SaeTrainParams> {
 public:
  std::string name() const override { return kName; }
  std::string description() const override {
    return "Trains a sparse autoencoder (relu, topk, batchtopk or jumprelu) on activations from a synthetic "
           "toy model with known features, a file of activations, or a language model's hook point on a "
           "corpus. Reports fvu, nmse, l0 and dead_fraction on held-out rows, mmcs against the ground truth "
           "(synthetic), and the CE-loss score and KL of splicing the SAE into the model (lm). Writes the "
           "SAE in SAELens's layout: sae_weights.safetensors and cfg.json.";
  }
  std::vector<ParamSpec> params() const override {
    std::vector<ParamSpec> p = {
        ChoiceParam("source",
                    "Where activations come from: 'synthetic' (a toy model with known features), 'file' "
                    "(an activation matrix) or 'lm' (a language model's hook point on a corpus)",
                    "synthetic", {"synthetic", "file", "lm"}),
        ChoiceParam("architecture",
                    "SAE architecture: 'relu' (L1 on decoder-norm-weighted activations), 'topk' (k largest "
                    "per row, AuxK), 'batchtopk' (k × batch largest per batch, inference threshold), "
                    "'jumprelu' (learned thresholds, L0 toward target_l0)",
                    "topk", {"relu", "topk", "batchtopk", "jumprelu"}),
        NumberParam("d_model", "source=synthetic: dimension of the activations (others: read from the data)",
                    "64", 2, 16384),
        NumberParam("n_features", "Synthetic source: number of ground-truth feature directions", "512", 1, 1 << 20),
        NumberParam("d_sae", "Number of SAE latents", "1024", 1, 1 << 20),
        NumberParam("k", "Active latents per sample (topk; mean per sample for batchtopk); at most d_sae", "6", 1,
                    65536),
        NumberParam("steps", "Optimizer steps", "2000", 1, 1e7),
        NumberParam("batch_size", "Samples per step", "256", 2, 1 << 20),
        NumberParam("lr", "Peak Adam learning rate (linear warm-up, linear decay over the last decay_fraction)",
                    "0.003", 1e-7, 1),
        NumberParam("seed", "Seed of the data (synthetic data, file shuffling, lm shuffle) and the initialisation",
                    "0", 0, 9007199254740991.0),
        NumberParam("firing_probability", "Synthetic source: probability that a feature fires on a sample (> 0)",
                    "0.005", 0, 1),
        NumberParam("correlation",
                    "Synthetic source: latent correlation of firings within groups of 16 features "
                    "(Gaussian copula; 0 = independent, 1 = a group fires together)",
                    "0", 0, 1),
        NumberParam("warmup_steps", "Steps of linear learning-rate warm-up; at most steps", "100", 0, 1e7),
        NumberParam("l1_coefficient",
                    "relu: weight of the L1 penalty sum_i z_i ||W_dec[i]|| / rms(x) (scale-free)", "0.3", 0, 1e6),
        NumberParam("l1_warmup_steps", "relu: steps over which the L1 coefficient ramps up from 0", "0", 0, 1e7),
        NumberParam("target_l0", "jumprelu: the L0 the penalty steers toward (0: k)", "0", 0, 65536),
        NumberParam("l0_coefficient", "jumprelu: weight of the penalty (L0 / target_l0 - 1)^2", "100", 0, 1e6),
        NumberParam("jumprelu_bandwidth", "jumprelu: rectangle-kernel bandwidth of the threshold's "
                                          "straight-through estimator",
                    "0.05", 1e-6, 100),
        NumberParam("jumprelu_init_threshold", "jumprelu: initial threshold of every latent", "0.1", 1e-6, 1e3),
        NumberParam("auxk_coefficient", "topk, batchtopk: weight of the AuxK loss for dead latents (0: off)",
                    "0.03125", 0, 100),
        NumberParam("dead_window_tokens",
                    "Tokens without firing after which a latent is dead, for AuxK and dead_fraction during "
                    "training (0: 20 / firing_probability for synthetic data, else 262144)",
                    "0", 0, 1e12),
        NumberParam("decay_fraction", "Fraction of the steps at the end over which the learning rate decays "
                                      "linearly",
                    "0.2", 0, 1),
        NumberParam("grad_clip_norm", "Clip the global gradient norm to this (0: no clipping)", "1", 0, 1e6),
        ChoiceParam("normalize_activations",
                    "'none'; 'expected_average_only_in' (SAELens): scale inputs so E||x|| = sqrt(d_model) "
                    "while training, the saved SAE has the scale folded into its weights; 'layer_norm' "
                    "(SAELens; Bussmann et al.'s input_unit_norm): standardise every row, and map the "
                    "reconstruction back, in training and in the saved SAE",
                    "layer_norm", {"none", "expected_average_only_in", "layer_norm"}),
        NumberParam("eval_tokens", "Held-out rows scored after training (0: automatic)", "0", 0, 1e9),
        NumberParam("eval_sequences", "source=lm: held-out sequences spliced for ce_loss_score and kl_div "
                                      "(0: none)",
                    "16", 0, 1e6),
        NumberParam("checkpoint_every", "Write a resumable checkpoint every this many steps (0: never)", "500",
                    0, 1e7),
    };
    for (ParamSpec& s : sae::SourceParams()) p.push_back(std::move(s));
    return p;
  }
  std::vector<std::string> result_fields() const override {
    return {"fvu",     "nmse",    "l0",       "dead_fraction", "dead_window_tokens", "mmcs", "ce_clean", "ce_sae",
            "ce_zero", "ce_loss_score", "kl_div", "splice_tokens", "train_fvu", "steps", "tokens", "seconds",
            "resumed_from_step", "normalization_scale"};
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
    if (p.l1_warmup_steps() > p.steps()) {
      return ParamError("l1_warmup_steps",
                        absl::StrCat("must be at most steps (", p.steps(), "), got ", p.l1_warmup_steps()));
    }
    const double activations = static_cast<double>(p.batch_size()) * static_cast<double>(p.d_sae());
    if (activations > static_cast<double>(kMaxElements)) {
      return ParamError("batch_size", absl::StrCat("batch_size × d_sae = ", p.batch_size(), " × ", p.d_sae(),
                                                   " exceeds the limit of ", kMaxElements, " activations"));
    }
    if (p.source() == "synthetic") {
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
      const double firings = p.firing_probability() * static_cast<double>(p.n_features());
      if (firings * static_cast<double>(p.batch_size()) < 1.0) {
        return ParamError("firing_probability",
                          absl::StrFormat("a batch would hold %.3g firing features on average "
                                          "(firing_probability × n_features × batch_size < 1); "
                                          "raise firing_probability, n_features or batch_size",
                                          firings * static_cast<double>(p.batch_size())));
      }
    }
    if (p.source() == "file" && p.file().empty()) return ParamError("file", "is required with source=file");
    if (p.source() == "lm") {
      if (p.model().empty()) return ParamError("model", "is required with source=lm");
      if (p.corpus().empty()) return ParamError("corpus", "is required with source=lm");
      if (p.skip_positions() + 1 >= p.context_length()) {
        return ParamError("skip_positions", absl::StrCat("must leave at least two positions of context_length (",
                                                         p.context_length(), "), got ", p.skip_positions()));
      }
      if (absl::StatusOr<lm::HookPoint> h = sae::ResolveHook(p.hook(), p.layer()); !h.ok()) {
        return ParamError("hook", h.status().message());
      }
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
    const bool synthetic = p.source() == "synthetic";

    sae::SourceSpec spec = SpecFrom(p);
    absl::StatusOr<sae::OpenedSource> src = sae::OpenSource(spec, ctx, kName, device);
    if (!src.ok()) return src.status();
    const int64_t d_in = src->d_model;
    if (static_cast<double>(p.d_sae()) * static_cast<double>(d_in) > static_cast<double>(kMaxElements)) {
      return ParamError("d_sae", absl::StrCat("d_sae × d_model = ", p.d_sae(), " × ", d_in,
                                              " exceeds the limit of ", kMaxElements, " weights"));
    }
    absl::StatusOr<sae::SaeArchitecture> arch = sae::ParseArchitecture(p.architecture());
    if (!arch.ok()) return ParamError("architecture", arch.status().message());

    ctx.Log(absl::StrFormat(
        "sae.train: %s SAE d_in=%d d_sae=%d k=%d on %s; %d steps x %d samples, lr %g, warm-up %d, seed %d, "
        "device %s, threads=%d",
        p.architecture(), d_in, p.d_sae(), p.k(), src->description, p.steps(), p.batch_size(), p.lr(),
        p.warmup_steps(), p.seed(), device.str(), at::get_num_threads()));
    if (synthetic && p.d_sae() < p.n_features()) {
      ctx.Log(absl::StrCat("note: d_sae (", p.d_sae(), ") < n_features (", p.n_features(),
                           "): the SAE cannot represent every feature, so mmcs stays below 1"));
    }

    const uint64_t seed = static_cast<uint64_t>(p.seed());
    at::Generator init_gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x9E3779B97F4A7C15ull);
    sae::SaeTrainerOptions to;
    to.architecture = *arch;
    to.d_in = d_in;
    to.d_sae = p.d_sae();
    to.k = p.k();
    to.lr = p.lr();
    to.warmup_steps = p.warmup_steps();
    to.total_steps = p.steps();
    to.decay_fraction = p.decay_fraction();
    to.grad_clip_norm = p.grad_clip_norm();
    to.auxk_coefficient = p.auxk_coefficient();
    to.dead_window_tokens = p.dead_window_tokens() > 0 ? p.dead_window_tokens()
                            : synthetic ? RareEventWindow(p.firing_probability(), 32768)
                                        : 262144;
    to.l1_coefficient = p.l1_coefficient();
    to.l1_warmup_steps = p.l1_warmup_steps();
    to.target_l0 = p.target_l0() > 0 ? p.target_l0() : static_cast<double>(p.k());
    to.l0_coefficient = p.l0_coefficient();
    to.bandwidth = p.jumprelu_bandwidth();
    to.init_threshold = p.jumprelu_init_threshold();
    if (p.normalize_activations() == "layer_norm") to.input_norm = sae::InputNorm::kLayerNorm;
    sae::SaeTrainer trainer(to, device, init_gen);

    // A first sample sets the normalisation scale and b_dec (geometric
    // median; at least 4096 rows so it is stable); it is not trained on.
    absl::StatusOr<torch::Tensor> first = src->train->Next(std::max<int64_t>(p.batch_size(), 4096));
    if (!first.ok()) return first.status();
    double scale = 1.0;
    if (p.normalize_activations() == "expected_average_only_in") scale = sae::ExpectedNormScale(*first);
    trainer.InitDecoderBias(*first * scale);

    // Resume from a checkpoint of this job when one matches these params.
    const std::string fingerprint = p.SerializeAsString();
    const std::string checkpoint = sae::CheckpointPath(ctx);
    int64_t resumed_from = 0;
    if (absl::StatusOr<int64_t> r = Resume(checkpoint, fingerprint, &trainer, src->train.get(), &scale); r.ok()) {
      resumed_from = *r;
      ctx.Log(absl::StrCat("sae.train: resumed from the checkpoint at step ", resumed_from));
    } else if (!absl::IsNotFound(r.status())) {
      ctx.Log(absl::StrCat("sae.train: ignoring the checkpoint: ", r.status().message()));
    }
    if (scale != 1.0) ctx.Log(absl::StrFormat("sae.train: inputs scaled by %.6g (E||x|| = sqrt(d_model))", scale));
    sae::ScaledStream train(src->train.get(), scale);

    sae::TrainStepStats last;
    for (int64_t step = trainer.steps_done() + 1; step <= p.steps(); ++step) {
      if (absl::Status s = ctx.CheckContinue(); !s.ok()) return s;
      absl::StatusOr<torch::Tensor> x = train.Next(p.batch_size());
      if (!x.ok()) return x.status();
      last = trainer.Step(*x);
      std::map<std::string, double> metrics = {{"loss", last.loss},
                                               {"fvu", last.fvu},
                                               {"l0", last.l0},
                                               {"dead_fraction", last.dead_fraction},
                                               {"dead_window_tokens", static_cast<double>(to.dead_window_tokens)},
                                               {"auxk", last.auxk},
                                               {"sparsity_loss", last.sparsity_loss},
                                               {"grad_norm", last.grad_norm},
                                               {"lr", last.lr}};
      // Recovery of the ground truth costs one n_features × d_sae product:
      // every 100 steps and at the end.
      if (synthetic && (step % 100 == 0 || step == p.steps())) {
        metrics["mmcs"] = sae::Mmcs(src->ground_truth, trainer.W_dec());
      }
      ctx.ReportProgress(step, p.steps());
      ctx.ReportMetrics(step, metrics);
      if (p.checkpoint_every() > 0 && step % p.checkpoint_every() == 0 && step < p.steps()) {
        if (absl::Status s = SaveCheckpoint(checkpoint, fingerprint, trainer, train, scale); !s.ok()) {
          ctx.Log(absl::StrCat("sae.train: checkpoint not written: ", s.message()));
        }
      }
    }

    sae::SaeModel model = trainer.Model();
    if (scale != 1.0) model = sae::FoldInputScale(model, scale);
    sae::SaeEvalOptions eo;
    eo.rows = p.eval_tokens() > 0 ? p.eval_tokens()
              : synthetic          ? RareEventWindow(p.firing_probability(), 16384)
                                   : 16384;
    eo.splice_sequences = p.eval_sequences();
    absl::StatusOr<sae::SaeEvalMetrics> eval = sae::EvaluateSae(model, *src, eo, [&] { return ctx.CheckContinue(); });
    if (!eval.ok()) return eval.status();
    for (const auto& [name, value] : eval->AsMap()) ctx.SetResult(name, value);
    const int64_t tokens = p.steps() * p.batch_size();
    ctx.SetResult("train_fvu", last.fvu);
    ctx.SetResult("steps", static_cast<double>(p.steps()));
    ctx.SetResult("tokens", static_cast<double>(tokens));
    ctx.SetResult("resumed_from_step", static_cast<double>(resumed_from));
    ctx.SetResult("normalization_scale", scale);

    model.metadata = src->metadata;
    model.metadata["sae_lens_training_version"] = nullptr;
    model.metadata["trained_by"] = "loupe sae.train";
    model.metadata["loupe_job_id"] = ctx.job_id();
    model.metadata["loupe_architecture"] = p.architecture();
    if (synthetic) {
      model.metadata["synthetic"] = {
          {"n_features", p.n_features()},
          {"firing_probability", p.firing_probability()},
          {"correlation", p.correlation()},
          {"correlation_group_size", sae::SyntheticSource::kGroupSize},
          {"magnitude_range", {sae::SyntheticSource::kMinMagnitude, sae::SyntheticSource::kMaxMagnitude}},
          {"seed", p.seed()}};
    }
    model.metadata["training"] = {{"steps", p.steps()},
                                  {"batch_size", p.batch_size()},
                                  {"lr", p.lr()},
                                  {"warmup_steps", p.warmup_steps()},
                                  {"training_tokens", tokens},
                                  {"normalize_activations", p.normalize_activations()},
                                  {"normalization_scale_folded", scale}};
    const std::string dir = (fs::path(ctx.scratch_dir()) / "saelens").string();
    if (absl::Status s = sae::SaveSaeLensDir(dir, model); !s.ok()) return s;
    if (absl::Status s = ctx.WriteArtifactFile(sae::kSaeWeightsFile, (fs::path(dir) / sae::kSaeWeightsFile).string(),
                                               "application/octet-stream");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = ctx.WriteArtifactFile(sae::kSaeConfigFile, (fs::path(dir) / sae::kSaeConfigFile).string(),
                                               "application/json");
        !s.ok()) {
      return s;
    }
    std::error_code ec;
    fs::remove(checkpoint, ec);
    const double elapsed = seconds();
    ctx.SetResult("seconds", elapsed);
    std::string summary;
    for (const auto& [name, value] : eval->AsMap()) absl::StrAppend(&summary, " ", name, "=", absl::StrFormat("%.4g", value));
    ctx.Log(absl::StrFormat("sae.train: done in %.1f s (%d tokens); held-out:%s", elapsed, tokens, summary));
    return absl::OkStatus();
  }

 private:
  static sae::SourceSpec SpecFrom(const SaeTrainParams& p) {
    sae::SourceSpec s;
    s.source = p.source();
    s.seed = static_cast<uint64_t>(p.seed());
    s.synthetic.d_model = p.d_model();
    s.synthetic.n_features = p.n_features();
    s.synthetic.firing_probability = p.firing_probability();
    s.synthetic.correlation = p.correlation();
    s.file = p.file();
    s.tensor = p.tensor();
    s.model = p.model();
    s.tokenizer = p.tokenizer();
    s.corpus = p.corpus();
    s.hook = p.hook();
    s.layer = p.layer();
    s.context_length = p.context_length();
    s.prepend_bos = p.prepend_bos();
    s.skip_positions = p.skip_positions();
    s.shuffle_buffer = p.shuffle_buffer();
    s.eval_rows = p.eval_tokens() > 0 ? p.eval_tokens() : 16384;
    return s;
  }

  static absl::Status SaveCheckpoint(const std::string& path, const std::string& fingerprint,
                                     const sae::SaeTrainer& trainer, const sae::ActivationStream& stream,
                                     double scale) {
    safetensors::TensorMap state;
    for (auto& [k, v] : trainer.State()) state["trainer." + k] = v;
    for (auto& [k, v] : stream.Position()) state["data." + k] = v;
    state["normalization_scale"] = torch::full({1}, scale, torch::kDouble);
    const std::string tmp = path + ".tmp";
    if (absl::Status s = safetensors::SaveTensors(tmp, state, {{"params_hash", std::to_string(std::hash<std::string>{}(fingerprint))}});
        !s.ok()) {
      return s;
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot move checkpoint into place: ", ec.message()));
    return absl::OkStatus();
  }

  // The step resumed from; NOT_FOUND when there is no checkpoint.
  static absl::StatusOr<int64_t> Resume(const std::string& path, const std::string& fingerprint,
                                        sae::SaeTrainer* trainer, sae::ActivationStream* stream, double* scale) {
    if (!fs::exists(path)) return absl::NotFoundError("no checkpoint");
    absl::StatusOr<std::shared_ptr<const safetensors::File>> f = safetensors::File::Open(path);
    if (!f.ok()) return f.status();
    auto it = (*f)->metadata().find("params_hash");
    if (it == (*f)->metadata().end() || it->second != std::to_string(std::hash<std::string>{}(fingerprint))) {
      return absl::FailedPreconditionError("it was written with other parameters");
    }
    absl::StatusOr<safetensors::TensorMap> state = safetensors::LoadTensors(path);
    if (!state.ok()) return state.status();
    std::map<std::string, torch::Tensor> trainer_state, data_state;
    for (auto& [k, v] : *state) {
      if (k.rfind("trainer.", 0) == 0) trainer_state[k.substr(8)] = v;
      if (k.rfind("data.", 0) == 0) data_state[k.substr(5)] = v;
    }
    if (absl::Status s = trainer->LoadState(trainer_state); !s.ok()) return s;
    if (absl::Status s = stream->Restore(data_state); !s.ok()) return s;
    if (auto s = state->find("normalization_scale"); s != state->end()) *scale = s->second.item<double>();
    return trainer->steps_done();
  }
};

}  // namespace

std::unique_ptr<JobKind> MakeSaeTrainKind() { return std::make_unique<SaeTrainKind>(); }

}  // namespace loupe
