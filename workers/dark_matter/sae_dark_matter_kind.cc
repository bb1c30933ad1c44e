#include "workers/dark_matter/sae_dark_matter_kind.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "loupe/v1/kinds.pb.h"
#include "workers/dark_matter/analysis.h"
#include "workers/dark_matter/array_file.h"
#include "workers/dark_matter/sae_handle.h"
#include "workers/lm/activations/activation_source.h"
#include <fstream>
#include <iterator>
#include "workers/lm/jobs/param_util.h"
#include "workers/lm/model/hf_io.h"
#include "workers/lm/tokenizer/tokenizer.h"
#include "workers/runtime/param_builders.h"
#include "workers/runtime/params.h"

namespace loupe {
namespace {

namespace fs = std::filesystem;
using loupe::v1::SaeDarkMatterParams;
using namespace dark_matter;

constexpr char kName[] = "sae.dark_matter";

absl::Status Error(absl::string_view param, absl::string_view what) { return lm::ParamError(kName, param, what); }

std::vector<std::string> SaeList(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) out.emplace_back(absl::StripAsciiWhitespace(part));
  return out;
}

// Rows [n_seq, T, d] → [n_seq · (T − skip), d].
torch::Tensor Flatten(const torch::Tensor& acts, int64_t skip) {
  return acts.slice(1, skip).reshape({-1, acts.size(2)}).contiguous();
}

class SaeDarkMatterKind : public TypedJobKind<SaeDarkMatterParams> {
 public:
  std::string name() const override { return kName; }
  std::string description() const override {
    return "Decomposes SAE error into the part linearly predictable from the activation and the rest (Engels et "
           "al., 'Decomposing the Dark Matter of Sparse Autoencoders'): held-out R² of the error vector and of "
           "norms, per-token scaling across widths, the FVU power law and its split, SAEs trained on each error "
           "part, the CE-loss splice, gradient pursuit, and prediction from earlier layers. Writes report.json "
           "(every number with its definition) and CSV tables.";
  }
  std::vector<ParamSpec> params() const override {
    return {
        ReferenceParam("model", "A Hugging Face model directory (job:ID of lm.train or a server path); with "
                                "corpus and hook/layer, the activation source"),
        ReferenceParam("corpus", "Text whose tokens give the activations (dataset:ID, job:ID/NAME or a path)"),
        ReferenceParam("tokenizer", "tokenizer.json; default: the model directory's"),
        TextParam("hook", "Hook point, e.g. blocks.1.hook_resid_post (model source)"),
        NumberParam("layer", "Shorthand for hook=blocks.<layer>.hook_resid_post", "", 0, 1 << 20),
        ReferenceParam("activations", "Instead of a model: a file of rows [n, d_model] (.safetensors or .npy)"),
        ReferenceListParam("saes", "Required. Comma-separated SAEs: job:ID of sae.train jobs, or allowed server paths of a "
                          "SAELens directory, a sae_weights.safetensors or a Gemma Scope params.npz; the first is the subject of analyses 4 and 7"),
        NumberParam("n_tokens", "Activation rows analysed (0: all rows of an activations file)", "20000", 0, 1e9),
        NumberParam("train_fraction", "Share of the rows that fit every regression; the rest give every R²",
                    "0.5", 0.01, 0.99),
        NumberParam("seed", "Seed of the row split and of the error SAEs", "0", 0, 9e15),
        NumberParam("context_length", "Tokens per sequence (0: min(the model's positions, 128))", "0", 0, 1 << 20),
        NumberParam("skip_positions", "Leading positions of each sequence left out (BOS, attention sinks)", "1", 0,
                    1 << 20),
        NumberParam("ce_sequences", "Sequences spliced for the CE analysis (0: skip it)", "32", 0, 1e6),
        NumberParam("error_sae_steps", "Analysis 4: training steps of each error SAE (0: skip)", "1000", 0, 1e7),
        NumberParam("error_sae_batch_size", "Analysis 4: rows per step", "256", 1, 1e6),
        NumberParam("error_sae_lr", "Analysis 4: Adam learning rate", "0.001", 1e-7, 1),
        NumberParam("error_sae_d_sae", "Analysis 4: latents (0: the first SAE's d_sae)", "0", 0, 1e7),
        NumberParam("error_sae_k", "Analysis 4: TopK k (0: the first SAE's mean L0, rounded)", "0", 0, 1e6),
        NumberParam("pursuit_tokens", "Analysis 6: rows run through gradient pursuit (0: skip)", "2048", 0, 1e8),
        ReferenceParam("prev_resid_sae", "Analysis 7: SAE of the previous layer's residual stream (hook_resid_pre "
                                         "of this layer); absent: the raw activation is the predictor"),
        ReferenceParam("mlp_sae", "Analysis 7: SAE of this layer's hook_mlp_out; absent: the raw activation"),
        ReferenceParam("attn_sae", "Analysis 7: SAE of this layer's hook_attn_out; absent: the raw activation"),
        ReferenceParam("token_ids", "With activations: token ids [n] for the token-id baseline"),
    };
  }
  std::vector<std::string> result_fields() const override {
    return {"fvu", "l0", "linear_error_r2", "error_norm_r2", "nonlinear_fvu", "error_sae_fvu", "linear_error_sae_fvu",
            "nonlinear_error_sae_fvu", "ce_clean", "ce_sae", "linear_ce_recovered_pct", "nonlinear_ce_recovered_pct",
            "pursuit_fvu", "earlier_nonlinear_error_r2", "tokens"};
  }
  std::vector<std::string> artifact_names() const override {
    return {"report.json", "saes.csv", "per_token_scaling.csv", "fvu_split.csv", "error_saes.csv",
            "ce_splice.csv", "pursuit.csv", "earlier_layers.csv"};
  }

 protected:
  absl::Status ValidateParams(const SaeDarkMatterParams& p) const override {
    const bool has_model = p.has_model() && !p.model().empty();
    const bool has_file = p.has_activations() && !p.activations().empty();
    if (has_model == has_file) {
      return Error(has_model ? "activations" : "model",
                   has_model ? "give either model (with corpus and hook/layer) or activations, not both"
                             : "is required: give model + corpus + hook (or layer), or activations=<file>");
    }
    if (has_model) {
      if (!p.has_corpus() || p.corpus().empty()) return Error("corpus", "is required with model");
      if (p.has_hook() == p.has_layer()) {
        return Error("hook", p.has_hook() ? "give hook or layer, not both"
                                          : "is required with model (or layer=L for blocks.L.hook_resid_post)");
      }
      if (p.has_hook()) {
        if (absl::StatusOr<lm::HookPoint> h = lm::HookPoint::Parse(p.hook()); !h.ok()) {
          return Error("hook", h.status().message());
        }
      }
      if (p.has_token_ids()) return Error("token_ids", "only with activations (a model source has its own ids)");
    } else {
      for (const char* f : {"corpus", "tokenizer", "hook"}) {
        const auto* fd = p.GetDescriptor()->FindFieldByName(f);
        if (p.GetReflection()->HasField(p, fd)) return Error(f, "only with model; activations= needs none");
      }
      if (p.has_layer()) return Error("layer", "only with model");
      if (p.has_prev_resid_sae() || p.has_mlp_sae() || p.has_attn_sae()) {
        return Error(p.has_prev_resid_sae() ? "prev_resid_sae" : p.has_mlp_sae() ? "mlp_sae" : "attn_sae",
                     "analysis 7 needs a model source");
      }
    }
    if (!p.has_saes() || p.saes().empty()) {
      return Error("saes", "is required: comma-separated SAE directories (job:ID of sae.train, or server paths)");
    }
    for (const std::string& s : SaeList(p.saes())) {
      if (s.empty()) return Error("saes", absl::StrCat("has an empty entry in '", p.saes(), "'"));
    }
    if (p.error_sae_d_sae() > 0 && p.error_sae_k() > p.error_sae_d_sae()) {
      return Error("error_sae_k", absl::StrCat(p.error_sae_k(), " exceeds error_sae_d_sae ", p.error_sae_d_sae()));
    }
    if (p.has_model() && p.n_tokens() == 0) return Error("n_tokens", "must be >= 1 with a model source");
    return absl::OkStatus();
  }

  absl::StatusOr<SaeHandle> LoadSae(JobContext& ctx, const std::string& param, const std::string& ref) const {
    absl::StatusOr<std::string> dir = ctx.ResolveInput(ref);
    if (!dir.ok()) return lm::ParamContext(kName, param, dir.status());
    absl::StatusOr<SaeHandle> sae = LoadSaeHandle(*dir, ref);
    if (!sae.ok()) return lm::ParamContext(kName, param, sae.status());
    return sae;
  }

  absl::Status RunJob(const SaeDarkMatterParams& given, JobContext& ctx) const override {
    SaeDarkMatterParams p = given;
    if (absl::Status s = ApplyDefaultsAndValidate(*this, &p); !s.ok()) return s;
    AnalysisInputs in;
    for (const std::string& ref : SaeList(p.saes())) {
      absl::StatusOr<SaeHandle> sae = LoadSae(ctx, "saes", ref);
      if (!sae.ok()) return sae.status();
      in.saes.push_back(*std::move(sae));
    }
    if (absl::Status s = ctx.CheckContinue(); !s.ok()) return s;

    if (p.has_activations()) {
      absl::StatusOr<std::string> path = ctx.ResolveInput(p.activations());
      if (!path.ok()) return lm::ParamContext(kName, "activations", path.status());
      absl::StatusOr<torch::Tensor> x = ReadArrayFile(*path, "activations");
      if (!x.ok()) return lm::ParamContext(kName, "activations", x.status());
      if (x->dim() == 3) *x = x->reshape({-1, x->size(2)});
      if (x->dim() != 2 || !x->is_floating_point()) {
        return Error("activations", absl::StrCat("must be a float matrix [n, d_model]; got ", x->dim(), "-D ",
                                                 std::string(c10::toString(x->scalar_type()))));
      }
      in.x = x->to(torch::kFloat32);
      if (p.has_token_ids()) {
        absl::StatusOr<std::string> tp = ctx.ResolveInput(p.token_ids());
        if (!tp.ok()) return lm::ParamContext(kName, "token_ids", tp.status());
        absl::StatusOr<torch::Tensor> ids = ReadArrayFile(*tp, "token_ids");
        if (!ids.ok()) return lm::ParamContext(kName, "token_ids", ids.status());
        if (ids->numel() != x->size(0) || ids->is_floating_point()) {
          return Error("token_ids", absl::StrCat("must hold ", x->size(0), " integer ids (one per row); got ",
                                                 ids->numel(), " ", std::string(c10::toString(ids->scalar_type()))));
        }
        in.token_ids = ids->reshape({-1}).to(torch::kInt64);
      }
      if (p.n_tokens() > 0 && p.n_tokens() < in.x.size(0)) {
        in.x = in.x.slice(0, 0, p.n_tokens());
        if (in.token_ids.defined()) in.token_ids = in.token_ids.slice(0, 0, p.n_tokens());
      }
      in.splice_note = "activations= gives rows without a model: no CE splice";
      in.earlier_note = "activations= gives rows without a model: no earlier-layer activations";
    } else if (absl::Status s = LoadModelSource(p, ctx, &in); !s.ok()) {
      return s;
    }
    ctx.Log(absl::StrFormat("%d rows, d_model %d, %d SAE(s)", in.x.size(0), in.x.size(1), in.saes.size()));

    AnalysisOptions opt;
    opt.train_fraction = p.train_fraction();
    opt.seed = static_cast<uint64_t>(p.seed());
    opt.train_error_saes = p.error_sae_steps() > 0;
    opt.error_sae.steps = p.error_sae_steps();
    opt.error_sae.batch_size = p.error_sae_batch_size();
    opt.error_sae.lr = p.error_sae_lr();
    opt.error_sae.d_sae = p.error_sae_d_sae();
    opt.error_sae.k = p.error_sae_k();
    opt.pursuit_tokens = p.pursuit_tokens();
    opt.progress = [&ctx](int64_t done, int64_t total) {
      ctx.ReportProgress(done, total);
      return ctx.CheckContinue();
    };
    opt.log = [&ctx](const std::string& line) { ctx.Log(line); };
    absl::StatusOr<AnalysisReport> report = RunAnalyses(in, opt);
    if (!report.ok()) {
      if (absl::IsCancelled(report.status()) || absl::IsDeadlineExceeded(report.status())) return report.status();
      return absl::Status(report.status().code(), absl::StrCat(kName, ": ", report.status().message()));
    }
    report->json["source"] = p.has_activations()
                                 ? nlohmann::ordered_json{{"activations", p.activations()}}
                                 : nlohmann::ordered_json{{"model", p.model()},
                                                          {"corpus", p.corpus()},
                                                          {"hook", p.has_hook() ? p.hook()
                                                                                : absl::StrCat("blocks.", p.layer(),
                                                                                               ".hook_resid_post")}};
    if (absl::Status s = ctx.WriteArtifact("report.json", report->json.dump(2), "application/json"); !s.ok()) return s;
    for (const auto& [file, table] : report->tables) {
      if (absl::Status s = ctx.WriteArtifact(file, table.Text(), "text/csv"); !s.ok()) return s;
    }
    for (const auto& [k, v] : report->results) ctx.SetResult(k, v);
    ctx.SetResult("tokens", static_cast<double>(in.x.size(0)));
    return absl::OkStatus();
  }

  absl::Status LoadModelSource(const SaeDarkMatterParams& p, JobContext& ctx, AnalysisInputs* in) const {
    absl::StatusOr<std::string> dir = ctx.ResolveInput(p.model());
    if (!dir.ok()) return lm::ParamContext(kName, "model", dir.status());
    absl::StatusOr<lm::LoadedModel> loaded = lm::LoadHfModel(*dir);
    if (!loaded.ok()) return lm::ParamContext(kName, "model", loaded.status());
    std::shared_ptr<lm::CausalLM> model = loaded->model;
    std::string tokenizer_path = (fs::path(*dir) / "tokenizer.json").string();
    if (p.has_tokenizer()) {
      absl::StatusOr<std::string> t = ctx.ResolveInput(p.tokenizer());
      if (!t.ok()) return lm::ParamContext(kName, "tokenizer", t.status());
      tokenizer_path = *t;
    } else if (!fs::exists(tokenizer_path)) {
      return Error("tokenizer", "not given, and the model directory has no tokenizer.json");
    }
    absl::StatusOr<std::unique_ptr<lm::Tokenizer>> tok = lm::Tokenizer::FromJsonFile(tokenizer_path);
    if (!tok.ok()) return lm::ParamContext(kName, "tokenizer", tok.status());
    absl::StatusOr<std::string> corpus_path = ctx.ResolveInput(p.corpus());
    if (!corpus_path.ok()) return lm::ParamContext(kName, "corpus", corpus_path.status());
    std::ifstream corpus_in(*corpus_path, std::ios::binary);
    if (!corpus_in) return Error("corpus", absl::StrCat(p.corpus(), " cannot be read"));
    const std::string text((std::istreambuf_iterator<char>(corpus_in)), std::istreambuf_iterator<char>());

    const std::string hook_name = p.has_hook() ? p.hook() : absl::StrCat("blocks.", p.layer(), ".hook_resid_post");
    lm::ActivationSourceOptions so;
    so.hook = hook_name;
    so.context_length = p.context_length() > 0 ? p.context_length()
                                               : std::min<int64_t>(model->config().max_positions, 128);
    so.skip_positions = p.skip_positions();
    so.seed = static_cast<uint64_t>(p.seed());
    absl::StatusOr<std::unique_ptr<lm::ActivationSource>> src = lm::ActivationSource::Create(model, **tok, text, so);
    if (!src.ok()) return absl::Status(src.status().code(), absl::StrCat(kName, ": ", src.status().message()));
    const lm::HookPoint hook = (*src)->hook();
    const torch::Tensor all = (*src)->sequences();
    const int64_t per_seq = so.context_length - so.skip_positions;
    const int64_t want = (p.n_tokens() + per_seq - 1) / per_seq;
    const int64_t n_seq = std::min<int64_t>(want, all.size(0));
    if (n_seq < want) {
      ctx.Log(absl::StrFormat("corpus gives %d sequences of %d tokens: %d rows instead of n_tokens %d", all.size(0),
                              so.context_length, all.size(0) * per_seq, p.n_tokens()));
    }
    torch::Tensor seqs = all.slice(0, 0, n_seq);
    auto collect = [&](const lm::HookPoint& h) -> absl::StatusOr<torch::Tensor> {
      absl::StatusOr<torch::Tensor> a = lm::CollectActivations(*model, seqs, h);
      if (!a.ok()) return a.status();
      return Flatten(*a, so.skip_positions).slice(0, 0, p.n_tokens());
    };
    absl::StatusOr<torch::Tensor> x = collect(hook);
    if (!x.ok()) return x.status();
    in->x = *x;
    in->token_ids = seqs.slice(1, so.skip_positions).reshape({-1}).slice(0, 0, p.n_tokens()).to(torch::kInt64);
    if (absl::Status s = ctx.CheckContinue(); !s.ok()) return s;

    if (p.ce_sequences() > 0) {
      // Sequences after the analysed ones when the corpus has them, so the CE
      // tokens are not those W* was fit on.
      const int64_t start = all.size(0) - n_seq >= p.ce_sequences() ? n_seq : std::max<int64_t>(0, all.size(0) - p.ce_sequences());
      in->splice = SpliceInputs{model, all.slice(0, start, start + p.ce_sequences()), hook, so.skip_positions};
      if (start < n_seq) in->splice_note = "the CE sequences overlap the analysed rows (the corpus is short)";
    } else {
      in->splice_note = "ce_sequences = 0";
    }

    if (hook.site != lm::HookPoint::kResidPost) {
      in->earlier_note = "analysis 7 is defined for a hook_resid_post hook";
      return absl::OkStatus();
    }
    struct Earlier {
      const char* param;
      lm::HookPoint::Site site;
      const char* label;
      bool set;
      std::string ref;
    };
    const std::vector<Earlier> earlier = {
        {"prev_resid_sae", lm::HookPoint::kResidPre, "prev_resid", p.has_prev_resid_sae(), p.prev_resid_sae()},
        {"attn_sae", lm::HookPoint::kAttnOut, "attn_out", p.has_attn_sae(), p.attn_sae()},
        {"mlp_sae", lm::HookPoint::kMlpOut, "mlp_out", p.has_mlp_sae(), p.mlp_sae()},
    };
    std::vector<std::string> notes;
    for (const Earlier& e : earlier) {
      lm::HookPoint h{e.site, hook.layer};
      absl::StatusOr<torch::Tensor> a = collect(h);
      if (!a.ok()) return a.status();
      if (e.set) {
        absl::StatusOr<SaeHandle> sae = LoadSae(ctx, e.param, e.ref);
        if (!sae.ok()) return sae.status();
        if (sae->d_in() != a->size(1)) {
          return Error(e.param, absl::StrCat("d_in ", sae->d_in(), " but ", h.Name(), " has width ", a->size(1)));
        }
        in->earlier.push_back({absl::StrCat(e.label, "_sae"), sae->Reconstruct(*a)});
        notes.push_back(absl::StrCat(e.label, "_sae: reconstruction of ", h.Name(), " by ", e.ref));
      } else {
        in->earlier.push_back({absl::StrCat(e.label, "_raw"), *a});
        notes.push_back(absl::StrCat(e.label, "_raw: the raw activation at ", h.Name(), " (no ", e.param, " given)"));
      }
    }
    in->earlier_note = absl::StrJoin(notes, "; ");
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<JobKind> MakeSaeDarkMatterKind() { return std::make_unique<SaeDarkMatterKind>(); }

}  // namespace loupe
