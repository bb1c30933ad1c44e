#include "workers/sae/sae_eval_kind.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "loupe/v1/kinds.pb.h"
#include "workers/runtime/params.h"
#include "workers/sae/sae_evaluation.h"
#include "workers/sae/sae_kind_util.h"
#include "workers/sae/sae_model.h"
#include "workers/sae/sae_sources.h"

namespace loupe {
namespace {

using loupe::v1::SaeEvalParams;

constexpr char kName[] = "sae.eval";

absl::Status ParamError(absl::string_view param, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(kName, " parameter '", param, "': ", what));
}

class SaeEvalKind : public TypedJobKind<SaeEvalParams> {
 public:
  std::string name() const override { return kName; }
  std::string description() const override {
    return "Scores a trained SAE on activations: fvu, nmse, l0 and dead_fraction on held-out rows; mmcs "
           "against the ground truth (synthetic source); ce_loss_score and kl_div of splicing its "
           "reconstruction into the model (lm source). The SAE is an sae.train job (job:ID), or an upload "
           "or path holding a SAELens directory, a sae_weights.safetensors (with sae_config) or a Gemma "
           "Scope params.npz.";
  }
  std::vector<ParamSpec> params() const override {
    std::vector<ParamSpec> p = {
        sae::ReferenceParam("sae", "The SAE: job:ID (sae.train), dataset:ID or a path (SAELens directory, "
                                   "sae_weights.safetensors, Gemma Scope params.npz)"),
        sae::ReferenceParam("sae_config", "cfg.json for an SAE given as a lone sae_weights.safetensors"),
        sae::ChoiceParam("source", "Where activations come from: 'synthetic', 'file' or 'lm' (as in sae.train)",
                         "synthetic", {"synthetic", "file", "lm"}),
        sae::NumberParam("tokens", "Activation rows scored (also the dead-fraction window)", "16384", 1, 1e9),
        sae::NumberParam("batch_size", "Rows per batch", "4096", 1, 1 << 20),
        sae::NumberParam("eval_sequences", "source=lm: sequences spliced for ce_loss_score and kl_div (0: none)",
                         "16", 0, 1e6),
        sae::NumberParam("seed", "source=synthetic: the sae.train job's seed (reproduces its ground truth); "
                                 "lm: shuffle seed",
                         "0", 0, 9007199254740991.0),
        sae::NumberParam("n_features", "source=synthetic: number of ground-truth features", "512", 1, 1 << 20),
        sae::NumberParam("firing_probability", "source=synthetic: probability that a feature fires", "0.005", 0, 1),
        sae::NumberParam("correlation", "source=synthetic: correlation of firings within groups of 16", "0", 0, 1),
    };
    for (ParamSpec& s : sae::SourceParams()) p.push_back(std::move(s));
    return p;
  }
  std::vector<std::string> result_fields() const override {
    return {"fvu",    "nmse",    "l0",           "dead_fraction", "dead_window_tokens", "mmcs",   "ce_clean",
            "ce_sae", "ce_zero", "ce_loss_score", "kl_div",       "splice_tokens",      "seconds"};
  }

 protected:
  absl::Status ValidateParams(const SaeEvalParams& p) const override {
    if (p.sae().empty()) return ParamError("sae", "is required (job:ID, dataset:ID or a path)");
    if (p.source() == "synthetic" && !(p.firing_probability() > 0)) {
      return ParamError("firing_probability", "must be greater than 0");
    }
    if (p.source() == "file" && p.file().empty()) return ParamError("file", "is required with source=file");
    if (p.source() == "lm") {
      if (p.model().empty()) return ParamError("model", "is required with source=lm");
      if (p.corpus().empty()) return ParamError("corpus", "is required with source=lm");
      if (absl::StatusOr<lm::HookPoint> h = sae::ResolveHook(p.hook(), p.layer()); !h.ok()) {
        return ParamError("hook", h.status().message());
      }
    }
    return absl::OkStatus();
  }

  absl::Status RunJob(const SaeEvalParams& given, JobContext& ctx) const override {
    SaeEvalParams p = given;
    if (absl::Status s = ApplyDefaultsAndValidate(*this, &p); !s.ok()) return s;
    const auto started = std::chrono::steady_clock::now();
    const torch::Device device(torch::kCPU);

    absl::StatusOr<std::string> sae_path = ctx.ResolveInput(p.sae());
    if (!sae_path.ok()) return ParamError("sae", sae_path.status().message());
    std::string config_path;
    if (!p.sae_config().empty()) {
      absl::StatusOr<std::string> c = ctx.ResolveInput(p.sae_config());
      if (!c.ok()) return ParamError("sae_config", c.status().message());
      config_path = *c;
    }
    absl::StatusOr<sae::SaeModel> model = sae::LoadSae(*sae_path, config_path);
    if (!model.ok()) return ParamError("sae", model.status().message());
    *model = model->To(device);

    sae::SourceSpec spec;
    spec.source = p.source();
    spec.seed = static_cast<uint64_t>(p.seed());
    spec.synthetic.d_model = model->d_in();
    spec.synthetic.n_features = p.n_features();
    spec.synthetic.firing_probability = p.firing_probability();
    spec.synthetic.correlation = p.correlation();
    spec.file = p.file();
    spec.tensor = p.tensor();
    spec.model = p.model();
    spec.tokenizer = p.tokenizer();
    spec.corpus = p.corpus();
    spec.hook = p.hook();
    spec.layer = p.layer();
    spec.context_length = p.context_length();
    spec.prepend_bos = p.prepend_bos();
    spec.skip_positions = p.skip_positions();
    spec.shuffle_buffer = p.shuffle_buffer();
    spec.eval_rows = p.tokens();
    absl::StatusOr<sae::OpenedSource> src = sae::OpenSource(spec, ctx, kName, device);
    if (!src.ok()) return src.status();
    if (src->d_model != model->d_in()) {
      return ParamError("sae", absl::StrCat("has d_in ", model->d_in(), " but the source's activations have d_model ",
                                            src->d_model));
    }
    if (p.source() == "synthetic") {
      // sae.train draws its b_dec sample (max(batch, 4096) rows) and its
      // training batches before the held-out rows; here the held-out rows are
      // simply the generator's first draws, which sae.train never saw only
      // if the seed differs. Say so rather than pretend otherwise.
      ctx.Log("sae.eval: synthetic rows are drawn from the seed's generator from its start; use a seed "
              "other than the training job's for rows it never saw (the features depend on the seed too, "
              "so mmcs needs the same seed)");
    }
    ctx.Log(absl::StrFormat("sae.eval: %s SAE d_in=%d d_sae=%d on %s, %d rows", sae::ArchitectureName(model->architecture),
                            model->d_in(), model->d_sae(), src->description, p.tokens()));
    sae::SaeEvalOptions eo;
    eo.rows = p.tokens();
    eo.batch = p.batch_size();
    eo.splice_sequences = p.eval_sequences();
    absl::StatusOr<sae::SaeEvalMetrics> m = sae::EvaluateSae(*model, *src, eo, [&] { return ctx.CheckContinue(); });
    if (!m.ok()) return m.status();
    std::string summary;
    for (const auto& [name, value] : m->AsMap()) {
      ctx.SetResult(name, value);
      absl::StrAppend(&summary, " ", name, "=", absl::StrFormat("%.4g", value));
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ctx.SetResult("seconds", elapsed);
    ctx.Log(absl::StrCat("sae.eval:", summary));
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<JobKind> MakeSaeEvalKind() { return std::make_unique<SaeEvalKind>(); }

}  // namespace loupe
