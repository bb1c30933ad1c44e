#include "workers/lm/jobs/lm_eval_kind.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "loupe/v1/kinds.pb.h"
#include "workers/lm/jobs/chunked_eval.h"
#include "workers/lm/jobs/corpus.h"
#include "workers/lm/jobs/eval_settings.h"
#include "workers/lm/jobs/param_util.h"
#include "workers/lm/model/hf_io.h"
#include "workers/lm/model/loss.h"
#include "workers/runtime/params.h"

namespace loupe {
namespace {

namespace fs = std::filesystem;
using loupe::v1::LmEvalParams;

constexpr char kName[] = "lm.eval";

absl::Status Error(absl::string_view param, absl::string_view what) { return lm::ParamError(kName, param, what); }

class LmEvalKind : public TypedJobKind<LmEvalParams> {
 public:
  std::string name() const override { return kName; }
  std::string description() const override {
    return "Bits per byte and per-token perplexity of a causal language model (a Hugging Face directory: job:ID of "
           "an lm.train job, or a server path) on a text corpus, scored in overlapping windows so that every token "
           "is predicted once with at least half a window of context.";
  }
  std::vector<ParamSpec> params() const override {
    using lm::NumberParam;
    using lm::ReferenceParam;
    return {
        ReferenceParam("model",
                       "Required. A Hugging Face model directory (config.json + model.safetensors): job:ID of an "
                       "lm.train job, or an allowed server path"),
        ReferenceParam("corpus", "Required. The text to score (UTF-8): dataset:ID, job:ID/NAME or an allowed server path"),
        ReferenceParam("tokenizer", "A tokenizer.json; default: the model directory's tokenizer.json"),
        NumberParam("context_length",
                    "Tokens per window (windows advance by half of it); 0: the model's positions, at most 2048",
                    "0", 0, 1 << 20),
        NumberParam("max_bytes", "Score at most the first this many bytes of the corpus (cut at a character); 0: all",
                    "0", 0, 1e15),
    };
  }
  std::vector<std::string> result_fields() const override {
    return {"bits_per_byte", "perplexity", "nats_per_token", "tokens", "bytes", "seconds"};
  }

 protected:
  absl::Status ValidateParams(const LmEvalParams& p) const override {
    if (!p.has_model() || p.model().empty()) {
      return Error("model", "is required: job:ID of an lm.train job, or a server path to a Hugging Face directory");
    }
    if (!p.has_corpus() || p.corpus().empty()) {
      return Error("corpus", "is required: a text file as dataset:ID, job:ID/NAME or an allowed server path");
    }
    if (p.has_tokenizer() && p.tokenizer().empty()) {
      return Error("tokenizer", "is empty; omit it to use the model directory's tokenizer.json");
    }
    if (p.context_length() == 1) return Error("context_length", "must be 0 (the model's) or at least 2");
    return absl::OkStatus();
  }

  absl::Status RunJob(const LmEvalParams& given, JobContext& ctx) const override {
    LmEvalParams p = given;
    if (absl::Status s = ApplyDefaultsAndValidate(*this, &p); !s.ok()) return s;
    const auto started = std::chrono::steady_clock::now();

    absl::StatusOr<std::string> dir = ctx.ResolveInput(p.model());
    if (!dir.ok()) return lm::ParamContext(kName, "model", dir.status());
    if (!fs::is_directory(*dir)) {
      return Error("model", absl::StrCat(p.model(), " is not a directory; pass job:ID (all of an lm.train job's "
                                                    "artifacts) or the path of a Hugging Face model directory"));
    }
    absl::StatusOr<lm::LoadedModel> loaded = lm::LoadHfModel(*dir);
    if (!loaded.ok()) return lm::ParamContext(kName, "model", loaded.status());
    for (const std::string& w : loaded->warnings) ctx.Log(absl::StrCat("model: ", w));
    lm::CausalLM& model = *loaded->model;
    const lm::ModelConfig& c = model.config();

    std::string tokenizer_path;
    if (p.has_tokenizer()) {
      absl::StatusOr<std::string> t = ctx.ResolveInput(p.tokenizer());
      if (!t.ok()) return lm::ParamContext(kName, "tokenizer", t.status());
      tokenizer_path = *t;
    } else {
      tokenizer_path = (fs::path(*dir) / "tokenizer.json").string();
      if (!fs::exists(tokenizer_path)) {
        return Error("tokenizer", absl::StrCat("not given, and the model directory ", p.model(),
                                               " has no tokenizer.json; pass tokenizer="));
      }
    }
    absl::StatusOr<std::unique_ptr<lm::Tokenizer>> tok = lm::Tokenizer::FromJsonFile(tokenizer_path);
    if (!tok.ok()) return lm::ParamContext(kName, "tokenizer", tok.status());

    // The window: GPT-2 has no positions past n_positions, and a Llama-family
    // model was not trained past max_position_embeddings.
    const int64_t window =
        p.context_length() > 0 ? p.context_length() : std::min(c.max_positions, lm::kMaxDefaultEvalWindow);
    if (window > c.max_positions) {
      return Error("context_length", absl::StrCat(window, " exceeds the model's ", c.max_positions, " positions (",
                                                  c.architecture == lm::Architecture::kGpt2
                                                      ? "n_positions"
                                                      : "max_position_embeddings",
                                                  ")"));
    }
    if (c.sliding_window.has_value() && window > *c.sliding_window) {
      return Error("context_length", absl::StrCat(window, " exceeds the model's sliding_window ", *c.sliding_window,
                                                  ", which Loupe does not implement"));
    }

    absl::StatusOr<std::string> corpus_path = ctx.ResolveInput(p.corpus());
    if (!corpus_path.ok()) return lm::ParamContext(kName, "corpus", corpus_path.status());
    absl::StatusOr<std::string> text =
        lm::ReadUtf8Text(*corpus_path, p.max_bytes(), absl::StrCat(kName, " parameter 'corpus': "));
    if (!text.ok()) return text.status();
    if (absl::Status s = ctx.CheckContinue(); !s.ok()) return s;

    const std::vector<int64_t> ids = lm::ScoringIds(**tok, *text);
    if (ids.size() < 2) {
      return Error("corpus", absl::StrCat("its ", text->size(), " bytes make ", ids.size(),
                                          " token(s); at least 2 are needed (a context token and a target)"));
    }
    const int64_t top = *std::max_element(ids.begin(), ids.end());
    if (top >= c.vocab_size) {
      return Error("tokenizer", absl::StrCat("gives token id ", top, " but the model's vocabulary has ", c.vocab_size,
                                             " tokens; is it the model's tokenizer?"));
    }
    ctx.Log(absl::StrFormat("model %s (%s, %d layers, d_model %d, vocab %d); corpus %s: %d bytes = %d tokens; "
                            "window %d, stride %d; threads %d",
                            p.model(), c.model_type, c.n_layers, c.d_model, c.vocab_size, p.corpus(), text->size(),
                            ids.size() - 1, std::min<int64_t>(window, ids.size()),
                            std::max<int64_t>(1, std::min<int64_t>(window, ids.size()) / 2), at::get_num_threads()));

    lm::EvalOptions eo;
    eo.window = window;
    eo.batch_size = lm::kEvalBatch;
    absl::StatusOr<lm::TextEval> r = lm::EvaluateTextInChunks(
        model, ids, static_cast<int64_t>(text->size()), eo, lm::kEvalWindowsPerChunk,
        [&](int64_t done, int64_t total) {
          ctx.ReportProgress(done, total);
          return ctx.CheckContinue();
        });
    if (!r.ok()) return r.status();

    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ctx.SetResult("bits_per_byte", r->bits_per_byte);
    ctx.SetResult("perplexity", r->perplexity);
    ctx.SetResult("nats_per_token", r->nats_per_token);
    ctx.SetResult("tokens", static_cast<double>(r->n_tokens));
    ctx.SetResult("bytes", static_cast<double>(r->n_bytes));
    ctx.SetResult("seconds", elapsed);
    ctx.Log(absl::StrFormat("done in %.1f s: %.4f bits/byte, perplexity %.3f (%.4f nats/token) over %d tokens",
                            elapsed, r->bits_per_byte, r->perplexity, r->nats_per_token, r->n_tokens));
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<JobKind> MakeLmEvalKind() { return std::make_unique<LmEvalKind>(); }

}  // namespace loupe
