#include "workers/sae/sae_sources.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "workers/lm/activations/activation_source.h"
#include "workers/lm/jobs/corpus.h"
#include "workers/lm/model/hf_io.h"
#include "workers/lm/tokenizer/tokenizer.h"

namespace loupe::sae {
namespace {

namespace fs = std::filesystem;

absl::Status ParamError(absl::string_view kind, absl::string_view param, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(kind, " parameter '", param, "': ", what));
}
absl::Status ParamContext(absl::string_view kind, absl::string_view param, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(kind, " parameter '", param, "': ", s.message()));
}

// Adapts lm::ActivationSource.
class LmStream : public ActivationStream {
 public:
  explicit LmStream(std::unique_ptr<lm::ActivationSource> source) : source_(std::move(source)) {}
  absl::StatusOr<torch::Tensor> Next(int64_t n) override {
    absl::StatusOr<lm::ActivationBatch> b = source_->Next(n);
    if (!b.ok()) return b.status();
    return b->acts;
  }
  int64_t d_model() const override { return source_->d_model(); }
  std::map<std::string, torch::Tensor> Position() const override { return source_->Position(); }
  absl::Status Restore(const std::map<std::string, torch::Tensor>& position) override {
    return source_->Restore(position);
  }

 private:
  std::unique_ptr<lm::ActivationSource> source_;
};

absl::Status OpenSynthetic(const SourceSpec& spec, torch::Device device, OpenedSource* out) {
  at::Generator data_gen = at::make_generator<at::CPUGeneratorImpl>(spec.seed);
  auto source = std::make_shared<SyntheticSource>(spec.synthetic, data_gen, device);
  out->train = std::make_unique<SyntheticStream>(source);
  out->eval = std::make_unique<SyntheticStream>(source);
  out->d_model = spec.synthetic.d_model;
  out->ground_truth = source->features();
  out->metadata = {{"model_name", "synthetic"},
                   {"hook_name", "synthetic"},
                   {"hook_head_index", nullptr},
                   {"context_size", 1},
                   {"prepend_bos", false},
                   {"dataset_path", "synthetic"}};
  out->description = absl::StrCat("synthetic data (n_features=", spec.synthetic.n_features,
                                  ", firing_probability=", spec.synthetic.firing_probability,
                                  ", correlation=", spec.synthetic.correlation, ")");
  return absl::OkStatus();
}

absl::Status OpenFile(const SourceSpec& spec, JobContext& ctx, absl::string_view kind, torch::Device device,
                      OpenedSource* out) {
  if (spec.file.empty()) return ParamError(kind, "file", "is required with source=file");
  absl::StatusOr<std::string> path = ctx.ResolveInput(spec.file);
  if (!path.ok()) return ParamContext(kind, "file", path.status());
  absl::StatusOr<std::shared_ptr<const ActivationMatrixFile>> m = ActivationMatrixFile::Open(*path, spec.tensor);
  if (!m.ok()) return ParamContext(kind, "file", m.status());
  const int64_t n = (*m)->rows();
  if (n < 2) return ParamError(kind, "file", "needs at least 2 rows (some to train on, some held out)");
  const int64_t held = std::clamp<int64_t>(spec.eval_rows, 1, std::max<int64_t>(1, n / 10));
  out->train = std::make_unique<FileActivationStream>(*m, 0, n - held, /*shuffle=*/true, spec.seed, device);
  out->eval = std::make_unique<FileActivationStream>(*m, n - held, n, /*shuffle=*/false, spec.seed, device);
  out->d_model = (*m)->cols();
  out->metadata = {{"model_name", "file"},
                   {"hook_name", spec.tensor.empty() ? "activations" : spec.tensor},
                   {"hook_head_index", nullptr},
                   {"context_size", 1},
                   {"prepend_bos", false},
                   {"dataset_path", spec.file}};
  out->description = absl::StrCat("file ", spec.file, " [", n, ", ", (*m)->cols(), "] (", n - held, " rows to train, ",
                                  held, " held out)");
  return absl::OkStatus();
}

absl::Status OpenLm(const SourceSpec& spec, JobContext& ctx, absl::string_view kind, torch::Device device,
                    OpenedSource* out) {
  if (spec.model.empty()) return ParamError(kind, "model", "is required with source=lm");
  if (spec.corpus.empty()) return ParamError(kind, "corpus", "is required with source=lm");
  absl::StatusOr<lm::HookPoint> hook = ResolveHook(spec.hook, spec.layer);
  if (!hook.ok()) return ParamContext(kind, "hook", hook.status());
  absl::StatusOr<std::string> dir = ctx.ResolveInput(spec.model);
  if (!dir.ok()) return ParamContext(kind, "model", dir.status());
  absl::StatusOr<lm::LoadedModel> loaded = lm::LoadHfModel(*dir);
  if (!loaded.ok()) return ParamContext(kind, "model", loaded.status());
  for (const std::string& w : loaded->warnings) ctx.Log(absl::StrCat(kind, ": model: ", w));
  std::shared_ptr<lm::CausalLM> model = loaded->model;
  model->to(device);
  if (hook->layer >= model->NumLayers()) {
    return ParamError(kind, "layer", absl::StrCat("is ", hook->layer, " but the model has ", model->NumLayers(),
                                                  " layers (0..", model->NumLayers() - 1, ")"));
  }
  std::string tokenizer_path;
  if (!spec.tokenizer.empty()) {
    absl::StatusOr<std::string> t = ctx.ResolveInput(spec.tokenizer);
    if (!t.ok()) return ParamContext(kind, "tokenizer", t.status());
    tokenizer_path = *t;
  } else {
    tokenizer_path = (fs::path(*dir) / "tokenizer.json").string();
    if (!fs::exists(tokenizer_path)) {
      return ParamError(kind, "tokenizer", "not given, and the model directory has no tokenizer.json");
    }
  }
  absl::StatusOr<std::unique_ptr<lm::Tokenizer>> tok = lm::Tokenizer::FromJsonFile(tokenizer_path);
  if (!tok.ok()) return ParamContext(kind, "tokenizer", tok.status());
  absl::StatusOr<std::string> corpus_path = ctx.ResolveInput(spec.corpus);
  if (!corpus_path.ok()) return ParamContext(kind, "corpus", corpus_path.status());
  absl::StatusOr<std::string> text =
      lm::ReadUtf8Text(*corpus_path, 0, absl::StrCat(kind, " parameter 'corpus': "));
  if (!text.ok()) return text.status();
  lm::CorpusSplit split = lm::SplitHeldOut(*text, 0.1);

  lm::ActivationSourceOptions o;
  o.hook = hook->Name();
  o.context_length = spec.context_length;
  o.prepend_bos = spec.prepend_bos;
  o.skip_positions = spec.skip_positions;
  o.shuffle_buffer = spec.shuffle_buffer;
  o.seed = spec.seed;
  auto fix = [&](const absl::Status& s) {
    // ActivationSource names its option; ours have the same names.
    return absl::Status(s.code(), absl::StrCat(kind, ": ", s.message()));
  };
  absl::StatusOr<std::unique_ptr<lm::ActivationSource>> train =
      lm::ActivationSource::Create(model, **tok, std::string(split.train), o);
  if (!train.ok()) return fix(train.status());
  lm::ActivationSourceOptions eo = o;
  eo.shuffle_buffer = 0;
  absl::StatusOr<std::unique_ptr<lm::ActivationSource>> eval =
      lm::ActivationSource::Create(model, **tok, std::string(split.val), eo);
  if (!eval.ok()) {
    return ParamError(kind, "corpus",
                      absl::StrCat("its held-out last 10% is too short for one sequence of context_length ",
                                   spec.context_length, " (", eval.status().message(), ")"));
  }
  out->eval_sequences = (*eval)->sequences();
  out->d_model = (*train)->d_model();
  out->train = std::make_unique<LmStream>(*std::move(train));
  out->eval = std::make_unique<LmStream>(*std::move(eval));
  out->model = model;
  out->hook = *hook;
  out->skip_positions = spec.skip_positions;
  out->metadata = {{"model_name", spec.model},
                   {"hook_name", hook->Name()},
                   {"hook_head_index", nullptr},
                   {"context_size", spec.context_length},
                   {"prepend_bos", spec.prepend_bos},
                   {"dataset_path", spec.corpus},
                   {"exclude_special_tokens", false},
                   {"loupe_skip_positions", spec.skip_positions}};
  out->description = absl::StrCat("model ", spec.model, " at ", hook->Name(), " on corpus ", spec.corpus);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<lm::HookPoint> ResolveHook(const std::string& hook, int64_t layer) {
  if (absl::StartsWith(hook, "blocks.")) return lm::HookPoint::Parse(hook);
  std::string site = hook;
  if (!absl::StartsWith(site, "hook_")) site = absl::StrCat("hook_", site);
  return lm::HookPoint::Parse(absl::StrCat("blocks.", layer, ".", site));
}

absl::StatusOr<OpenedSource> OpenSource(const SourceSpec& spec, JobContext& ctx, absl::string_view kind,
                                        torch::Device device) {
  OpenedSource out;
  absl::Status s;
  if (spec.source == "synthetic") {
    s = OpenSynthetic(spec, device, &out);
  } else if (spec.source == "file") {
    s = OpenFile(spec, ctx, kind, device, &out);
  } else if (spec.source == "lm") {
    s = OpenLm(spec, ctx, kind, device, &out);
  } else {
    s = ParamError(kind, "source", absl::StrCat("unknown source '", spec.source, "' (synthetic, file or lm)"));
  }
  if (!s.ok()) return s;
  return out;
}

std::map<std::string, torch::Tensor> SyntheticStream::Position() const {
  return {{"synthetic.generator", source_->GeneratorState()}};
}

absl::Status SyntheticStream::Restore(const std::map<std::string, torch::Tensor>& position) {
  auto it = position.find("synthetic.generator");
  if (it == position.end()) return absl::InvalidArgumentError("checkpoint lacks the synthetic generator state");
  source_->SetGeneratorState(it->second);
  return absl::OkStatus();
}

}  // namespace loupe::sae
