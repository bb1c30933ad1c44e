#include "workers/lm/jobs/lm_train_kind.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <filesystem>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "loupe/v1/kinds.pb.h"
#include "nlohmann/json.hpp"
#include "workers/lm/jobs/chunked_eval.h"
#include "workers/lm/jobs/corpus.h"
#include "workers/lm/jobs/eval_settings.h"
#include "workers/lm/jobs/optim.h"
#include "workers/lm/jobs/param_util.h"
#include "workers/lm/jobs/train_data.h"
#include "workers/lm/jobs/unigram.h"
#include "workers/lm/model/hf_io.h"
#include "workers/lm/model/loss.h"
#include "workers/lm/tokenizer/bpe_trainer.h"
#include "workers/runtime/params.h"

namespace loupe {
namespace {

namespace fs = std::filesystem;
using loupe::v1::LmTrainParams;

constexpr char kName[] = "lm.train";
constexpr char kEndOfText[] = "<|endoftext|>";

// Guards against typos that would ask for tens of GiB.
constexpr double kMaxLogits = double{1 << 28};  // batch × context × vocab floats (1 GiB, ×3 with grads)
constexpr double kMaxParams = 1e9;

// Tokenizer training and tokenizing go through the text in pieces of this
// size, checking for cancellation between them (~0.1 s each).
constexpr size_t kChunkBytes = size_t{1} << 20;

absl::Status Error(absl::string_view param, absl::string_view what) { return lm::ParamError(kName, param, what); }

// SwiGLU MLP width for a Llama of width d: 8/3·d (same parameters as GPT-2's
// 4·d two-matrix MLP), rounded up to a multiple of 32 as Llama rounds to 256.
int64_t LlamaMlpWidth(int64_t d) { return (8 * d / 3 + 31) / 32 * 32; }

double ApproxParams(const LmTrainParams& p, double vocab) {
  const double d = static_cast<double>(p.d_model());
  return vocab * d + static_cast<double>(p.n_layers()) * 12.0 * d * d + static_cast<double>(p.context_length()) * d;
}

class LmTrainKind : public TypedJobKind<LmTrainParams> {
 public:
  std::string name() const override { return kName; }
  std::string description() const override {
    return "Trains a small decoder-only language model (GPT-2 or Llama architecture) on a text corpus, with a "
           "given tokenizer.json or a byte-level BPE it trains on the corpus. Streams the loss; reports held-out "
           "bits_per_byte beside the same tokenizer's unigram baseline. Writes a Hugging Face model directory: "
           "config.json, model.safetensors, tokenizer.json, tokenizer_config.json.";
  }
  std::vector<ParamSpec> params() const override {
    using lm::ChoiceParam;
    using lm::NumberParam;
    using lm::ReferenceParam;
    return {
        ChoiceParam("architecture",
                    "Model family: gpt2 (learned positions, LayerNorm, GELU MLP, tied embeddings) or llama "
                    "(RoPE, RMSNorm, SwiGLU MLP, separate output head)",
                    "gpt2", {"gpt2", "llama"}),
        ReferenceParam("corpus",
                       "Required. The training text (UTF-8): dataset:ID, job:ID/NAME or an allowed server path. "
                       "The last val_fraction of its bytes is held out"),
        ReferenceParam("tokenizer",
                       "A Hugging Face tokenizer.json to use (dataset:ID, job:ID/tokenizer.json or a path); if "
                       "absent, a byte-level BPE of vocab_size tokens is trained on the training split"),
        NumberParam("vocab_size",
                    "Size of the tokenizer trained when `tokenizer` is absent: <|endoftext|> + 256 bytes + merges "
                    "(at least 257; fewer if the corpus runs out of repeated pairs). Ignored with `tokenizer`",
                    "2048", 1, 262144),
        NumberParam("n_layers", "Transformer blocks", "2", 1, 64),
        NumberParam("d_model", "Model width; a multiple of n_heads", "128", 8, 8192),
        NumberParam("n_heads", "Attention heads (head dimension d_model / n_heads; even for llama)", "4", 1, 256),
        NumberParam("context_length",
                    "Tokens per training window, and the model's positions (n_positions / max_position_embeddings)",
                    "128", 8, 8192),
        NumberParam("steps", "Optimizer steps", "600", 1, 1e7),
        NumberParam("batch_size", "Windows per step", "16", 1, 4096),
        NumberParam("lr",
                    "Peak AdamW learning rate (betas 0.9/0.95, weight decay 0.1 on matrices; linear warm-up, "
                    "then cosine decay to lr/10; gradients clipped to norm 1)",
                    "0.002", 1e-6, 1),
        NumberParam("warmup_steps", "Steps of linear learning-rate warm-up; at most steps", "100", 0, 1e7),
        NumberParam("seed", "Seed of the initialisation and of the training windows", "0", 0, 9007199254740991.0),
        NumberParam("val_fraction",
                    "Fraction of the corpus (by bytes, from the end) held out for bits_per_byte; never trained on",
                    "0.1", 0.001, 0.5),
    };
  }
  std::vector<std::string> result_fields() const override {
    return {"bits_per_byte", "unigram_bits_per_byte", "val_loss", "train_loss", "tokens_trained",
            "seconds",       "n_params",              "vocab_size"};
  }
  std::vector<std::string> artifact_names() const override {
    return {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"};
  }

 protected:
  absl::Status ValidateParams(const LmTrainParams& p) const override {
    // Values are within their declared bounds here; these checks relate them.
    if (!p.has_corpus() || p.corpus().empty()) {
      return Error("corpus", "is required: a text file as dataset:ID, job:ID/NAME or an allowed server path");
    }
    if (p.has_tokenizer() && p.tokenizer().empty()) return Error("tokenizer", "is empty; omit it to train one");
    if (p.d_model() % p.n_heads() != 0) {
      return Error("n_heads", absl::StrCat("must divide d_model (", p.d_model(), "), got ", p.n_heads()));
    }
    if (p.architecture() == "llama" && (p.d_model() / p.n_heads()) % 2 != 0) {
      return Error("n_heads", absl::StrCat("llama needs an even head dimension for RoPE; d_model / n_heads = ",
                                           p.d_model() / p.n_heads()));
    }
    const bool trains_tokenizer = !p.has_tokenizer();
    if (trains_tokenizer && p.vocab_size() < 257) {
      return Error("vocab_size", absl::StrCat("must be at least 257 when training a tokenizer (<|endoftext|> and the "
                                              "256 byte tokens), got ",
                                              p.vocab_size()));
    }
    if (p.warmup_steps() > p.steps()) {
      return Error("warmup_steps", absl::StrCat("must be at most steps (", p.steps(), "), got ", p.warmup_steps()));
    }
    // With a given tokenizer the vocabulary is only known at run time; these
    // use vocab_size as the estimate, and RunJob checks again.
    const double vocab = static_cast<double>(p.vocab_size());
    if (trains_tokenizer) {
      const double logits = static_cast<double>(p.batch_size()) * static_cast<double>(p.context_length()) * vocab;
      if (logits > kMaxLogits) {
        return Error("batch_size", absl::StrFormat("batch_size × context_length × vocab_size = %.0f logits exceeds "
                                                   "the limit of %.0f",
                                                   logits, kMaxLogits));
      }
    }
    if (ApproxParams(p, vocab) > kMaxParams) {
      return Error("d_model", absl::StrFormat("the model would have about %.3g parameters, over the limit of %.0g",
                                              ApproxParams(p, vocab), kMaxParams));
    }
    return absl::OkStatus();
  }

  absl::Status RunJob(const LmTrainParams& given, JobContext& ctx) const override;
};

// The tokenizer: loaded from `tokenizer`, or trained on the training split.
absl::StatusOr<std::unique_ptr<lm::Tokenizer>> GetTokenizer(const LmTrainParams& p, absl::string_view train,
                                                             JobContext& ctx) {
  if (p.has_tokenizer()) {
    absl::StatusOr<std::string> path = ctx.ResolveInput(p.tokenizer());
    if (!path.ok()) return lm::ParamContext(kName, "tokenizer", path.status());
    absl::StatusOr<std::unique_ptr<lm::Tokenizer>> tok = lm::Tokenizer::FromJsonFile(*path);
    if (!tok.ok()) return lm::ParamContext(kName, "tokenizer", tok.status());
    ctx.Log(absl::StrFormat("tokenizer %s: %d tokens (vocab_size ignored)", p.tokenizer(), (*tok)->vocab_size()));
    return tok;
  }
  const auto t0 = std::chrono::steady_clock::now();
  // Pieces cut where the GPT-2 pattern cannot join words (corpus.h), so the
  // word counts are those of the whole text.
  std::vector<std::string> docs;
  for (absl::string_view piece : lm::ChunkAtLines(train, kChunkBytes)) docs.emplace_back(piece);
  lm::BpeTrainerOptions o;
  o.vocab_size = static_cast<int32_t>(p.vocab_size());
  o.special_tokens = {kEndOfText};
  absl::StatusOr<std::unique_ptr<lm::Tokenizer>> tok = lm::TrainByteLevelBpe(docs, o);
  if (!tok.ok()) return lm::ParamContext(kName, "vocab_size", tok.status());
  ctx.Log(absl::StrFormat("trained a byte-level BPE tokenizer of %d tokens (asked %d) on %d bytes in %.2f s",
                          (*tok)->vocab_size(), p.vocab_size(), train.size(),
                          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
  return tok;
}

absl::StatusOr<lm::ModelConfig> MakeConfig(const LmTrainParams& p, const lm::Tokenizer& tok) {
  const int64_t vocab = tok.vocab_size();
  lm::ModelConfig c =
      p.architecture() == "llama"
          ? lm::MakeLlamaConfig(vocab, p.d_model(), p.n_layers(), p.n_heads(), p.n_heads(),
                                LlamaMlpWidth(p.d_model()), p.context_length())
          : lm::MakeGpt2Config(vocab, p.d_model(), p.n_layers(), p.n_heads(), p.context_length());
  // transformers' defaults (GPT-2: 50256, Llama: 1 and 2) would name the
  // wrong tokens; generation stops at eos_token_id.
  std::optional<int32_t> bos = tok.bos_id(), eos = tok.eos_id();
  c.hf["bos_token_id"] = bos.has_value() ? nlohmann::json(*bos) : nlohmann::json(nullptr);
  c.hf["eos_token_id"] = eos.has_value() ? nlohmann::json(*eos) : nlohmann::json(nullptr);
  if (absl::Status s = lm::ValidateConfig(c); !s.ok()) return lm::ParamContext(kName, "d_model", s);
  return c;
}

// tokenizer_config.json: makes AutoTokenizer load tokenizer.json as it is
// (a plain PreTrainedTokenizerFast), rather than through the model_type's
// class, whose default special tokens (Llama's <s>) would not match.
std::string TokenizerConfigJson(const lm::Tokenizer& tok, int64_t context_length) {
  nlohmann::json j = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                      {"model_max_length", context_length},
                      {"clean_up_tokenization_spaces", false}};
  if (tok.bos_id().has_value()) j["bos_token"] = tok.IdToToken(*tok.bos_id());
  if (tok.eos_id().has_value()) j["eos_token"] = tok.IdToToken(*tok.eos_id());
  return j.dump(2) + "\n";
}

absl::Status WriteArtifacts(const lm::CausalLM& model, const lm::Tokenizer& tok, const LmTrainParams& p,
                            JobContext& ctx) {
  const fs::path dir = fs::path(ctx.scratch_dir()) / "model";
  if (absl::Status s = lm::SaveHfModel(model, dir.string()); !s.ok()) return s;
  if (absl::Status s = tok.SaveJson((dir / "tokenizer.json").string()); !s.ok()) return s;
  const std::pair<const char*, const char*> files[] = {{"config.json", "application/json"},
                                                       {"model.safetensors", "application/octet-stream"},
                                                       {"tokenizer.json", "application/json"}};
  for (const auto& [name, media_type] : files) {
    if (absl::Status s = ctx.WriteArtifactFile(name, (dir / name).string(), media_type); !s.ok()) return s;
  }
  return ctx.WriteArtifact("tokenizer_config.json", TokenizerConfigJson(tok, p.context_length()), "application/json");
}

absl::Status LmTrainKind::RunJob(const LmTrainParams& given, JobContext& ctx) const {
  // The server applies defaults and checks bounds before Run; doing it again
  // costs nothing and keeps direct callers (tests, tools) safe.
  LmTrainParams p = given;
  if (absl::Status s = ApplyDefaultsAndValidate(*this, &p); !s.ok()) return s;
  const auto started = std::chrono::steady_clock::now();
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  auto check = [&ctx] { return ctx.CheckContinue(); };

  // --- Data: read, split, tokenize once.
  absl::StatusOr<std::string> path = ctx.ResolveInput(p.corpus());
  if (!path.ok()) return lm::ParamContext(kName, "corpus", path.status());
  absl::StatusOr<std::string> text = lm::ReadUtf8Text(*path, 0, absl::StrCat(kName, " parameter 'corpus': "));
  if (!text.ok()) return text.status();
  const lm::CorpusSplit split = lm::SplitHeldOut(*text, p.val_fraction());
  if (split.train.empty() || split.val.empty()) {
    return Error("corpus", absl::StrCat("is too small (", text->size(), " bytes) to split into training and held-out "
                                        "text at val_fraction ",
                                        p.val_fraction()));
  }
  if (absl::Status s = check(); !s.ok()) return s;

  absl::StatusOr<std::unique_ptr<lm::Tokenizer>> tok = GetTokenizer(p, split.train, ctx);
  if (!tok.ok()) return tok.status();
  if (absl::Status s = check(); !s.ok()) return s;

  absl::StatusOr<std::vector<int32_t>> train_ids = lm::EncodeInChunks(**tok, split.train, kChunkBytes, check);
  if (!train_ids.ok()) return train_ids.status();
  const std::vector<int64_t> val_ids = lm::ScoringIds(**tok, split.val);
  const int64_t val_targets = static_cast<int64_t>(val_ids.size()) - 1;
  if (static_cast<int64_t>(train_ids->size()) < p.context_length()) {
    return Error("corpus", absl::StrCat("its training split (", split.train.size(), " bytes) holds ",
                                        train_ids->size(), " tokens, fewer than one window of context_length ",
                                        p.context_length(), "; use a longer text or a smaller context_length"));
  }
  if (val_targets < 1) {
    return Error("corpus", absl::StrCat("its held-out split (", split.val.size(),
                                        " bytes) holds no token to score; raise val_fraction"));
  }
  const double logits = static_cast<double>(p.batch_size()) * static_cast<double>(p.context_length()) *
                        static_cast<double>((*tok)->vocab_size());
  if (logits > kMaxLogits) {
    return Error("batch_size", absl::StrFormat("batch_size × context_length × the tokenizer's %d tokens = %.0f "
                                               "logits exceeds the limit of %.0f",
                                               (*tok)->vocab_size(), logits, kMaxLogits));
  }

  // Baseline: the same tokenizer's unigram model of the training split, on
  // the same held-out targets the model is scored on.
  lm::UnigramModel unigram((*tok)->vocab_size());
  unigram.Count(*train_ids);
  const double unigram_bpb =
      unigram.BitsPerByte(absl::MakeConstSpan(val_ids).subspan(1), static_cast<int64_t>(split.val.size()));
  ctx.Log(absl::StrFormat(
      "corpus %s: %d bytes; training split %d bytes = %d tokens (%.2f bytes/token), held out %d bytes = %d tokens; "
      "unigram baseline %.4f bits/byte",
      p.corpus(), text->size(), split.train.size(), train_ids->size(),
      static_cast<double>(split.train.size()) / static_cast<double>(train_ids->size()), split.val.size(),
      val_targets, unigram_bpb));

  // --- Model.
  absl::StatusOr<lm::ModelConfig> config = MakeConfig(p, **tok);
  if (!config.ok()) return config.status();
  lm::CreateOptions co;
  co.seed = static_cast<uint64_t>(p.seed());
  absl::StatusOr<std::shared_ptr<lm::CausalLM>> created = lm::CreateModel(*config, co);
  if (!created.ok()) return created.status();
  lm::CausalLM& model = **created;
  int64_t n_params = 0;
  for (const torch::Tensor& t : model.parameters()) n_params += t.numel();
  ctx.Log(absl::StrFormat(
      "model %s: %d layers, d_model %d, %d heads, context %d, vocab %d: %d parameters; %d steps × %d windows, "
      "lr %g, warm-up %d, seed %d, threads %d",
      p.architecture(), p.n_layers(), p.d_model(), p.n_heads(), p.context_length(), config->vocab_size, n_params,
      p.steps(), p.batch_size(), p.lr(), p.warmup_steps(), p.seed(), at::get_num_threads()));

  // --- Training.
  // Separate streams: changing the model leaves the windows unchanged.
  // The sampler takes the ids over: one copy of the corpus in memory.
  lm::TokenWindows windows(*std::move(train_ids), p.context_length(),
                           static_cast<uint64_t>(p.seed()) ^ 0x9E3779B97F4A7C15ull);
  lm::LmOptimizerOptions oo;
  oo.lr = p.lr();
  oo.warmup_steps = p.warmup_steps();
  oo.total_steps = p.steps();
  lm::LmOptimizer optimizer(model, oo);
  // A cheap look at generalisation while training: the first ≤ 16 windows of
  // the held-out text, every 5% of the steps.
  const std::vector<int64_t> probe(val_ids.begin(),
                                   val_ids.begin() + std::min<int64_t>(val_ids.size(), 8 * p.context_length() + 1));
  const int64_t probe_every = std::max<int64_t>(1, p.steps() / 20);
  lm::EvalOptions eo;
  eo.window = p.context_length();
  eo.batch_size = lm::kEvalBatch;

  const int64_t tokens_per_step = p.batch_size() * p.context_length();
  // The last ~10% of step losses (at most 100) make train_loss.
  const size_t tail = static_cast<size_t>(std::clamp<int64_t>(p.steps() / 10, 1, 100));
  std::deque<double> recent;
  double train_seconds = 0;
  model.train();
  for (int64_t step = 1; step <= p.steps(); ++step) {
    if (absl::Status s = check(); !s.ok()) return s;
    const auto t0 = std::chrono::steady_clock::now();
    torch::Tensor batch = windows.Next(p.batch_size());
    torch::Tensor loss = lm::NextTokenLoss(model.Forward(batch), batch);
    loss.backward();
    const double grad_norm = optimizer.Step(step);
    const double loss_value = loss.item<double>();
    train_seconds += seconds_since(t0);
    if (!std::isfinite(loss_value)) {
      return absl::InternalError(absl::StrFormat("training diverged at step %d (loss %g); lower lr", step, loss_value));
    }
    recent.push_back(loss_value);
    if (recent.size() > tail) recent.pop_front();
    std::map<std::string, double> metrics = {
        {"loss", loss_value},
        {"lr", optimizer.lr()},
        {"grad_norm", grad_norm},
        {"tokens_per_s", static_cast<double>(step * tokens_per_step) / std::max(train_seconds, 1e-9)}};
    if (step % probe_every == 0 || step == p.steps()) {
      absl::StatusOr<lm::TextEval> pe = lm::EvaluateText(model, probe, 1, eo);  // restores train()
      if (pe.ok()) metrics["val_loss"] = pe->nats_per_token;
    }
    ctx.ReportProgress(step, p.steps());
    ctx.ReportMetrics(step, metrics);
  }
  model.eval();

  // --- Held-out evaluation, with lm.eval's settings (eval_settings.h).
  const auto eval_started = std::chrono::steady_clock::now();
  absl::StatusOr<lm::TextEval> val = lm::EvaluateTextInChunks(
      model, val_ids, static_cast<int64_t>(split.val.size()), eo, lm::kEvalWindowsPerChunk,
      [&](int64_t, int64_t) { return check(); });
  if (!val.ok()) return val.status();
  const double eval_seconds = seconds_since(eval_started);
  const double train_loss = std::accumulate(recent.begin(), recent.end(), 0.0) / static_cast<double>(recent.size());

  if (absl::Status s = WriteArtifacts(model, **tok, p, ctx); !s.ok()) return s;
  const double elapsed = seconds_since(started);
  ctx.SetResult("bits_per_byte", val->bits_per_byte);
  ctx.SetResult("unigram_bits_per_byte", unigram_bpb);
  ctx.SetResult("val_loss", val->nats_per_token);
  ctx.SetResult("train_loss", train_loss);
  ctx.SetResult("tokens_trained", static_cast<double>(p.steps() * tokens_per_step));
  ctx.SetResult("n_params", static_cast<double>(n_params));
  ctx.SetResult("vocab_size", static_cast<double>(config->vocab_size));
  ctx.SetResult("seconds", elapsed);
  ctx.Log(absl::StrFormat(
      "done in %.1f s (training %.1f s, %.0f tokens/s; held-out evaluation %.1f s): held-out %.4f bits/byte "
      "(unigram %.4f), val_loss %.4f, train_loss %.4f nats/token",
      elapsed, train_seconds, static_cast<double>(p.steps() * tokens_per_step) / train_seconds,
      eval_seconds, val->bits_per_byte, unigram_bpb, val->nats_per_token, train_loss));
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<JobKind> MakeLmTrainKind() { return std::make_unique<LmTrainKind>(); }

}  // namespace loupe
