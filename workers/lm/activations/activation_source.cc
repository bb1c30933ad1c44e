#include "workers/lm/activations/activation_source.h"

#include <algorithm>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace loupe::lm {
namespace {

absl::Status Invalid(absl::string_view option, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("'", option, "' ", problem));
}

// Options for a forward that captures `hook` and runs no block past it.
ForwardOptions CaptureOptions(const CausalLM& model, const HookPoint& hook, const Hooks* hooks) {
  ForwardOptions o;
  o.hooks = hooks;
  // Every site of block L is computed by running blocks [0, L + 1).
  o.stop_at_layer = std::min<int64_t>(hook.layer + 1, model.NumLayers());
  return o;
}

}  // namespace

absl::StatusOr<torch::Tensor> CollectActivations(CausalLM& model, const torch::Tensor& sequences,
                                                 const HookPoint& hook, int64_t batch_sequences) {
  if (sequences.dim() != 2 || sequences.scalar_type() != torch::kLong) {
    return Invalid("sequences", "must be int64 [n, T]");
  }
  if (hook.layer < 0 || hook.layer >= model.NumLayers()) {
    return Invalid("hook", absl::StrCat("names layer ", hook.layer, " but the model has ", model.NumLayers(),
                                        " layers"));
  }
  batch_sequences = std::max<int64_t>(batch_sequences, 1);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (int64_t begin = 0; begin < sequences.size(0); begin += batch_sequences) {
    const torch::Tensor batch = sequences.slice(0, begin, std::min(begin + batch_sequences, sequences.size(0)));
    torch::Tensor captured;
    Hooks hooks;
    hooks.Capture(hook, &captured);
    const ForwardOptions o = CaptureOptions(model, hook, &hooks);
    if (absl::Status s = model.CheckForward(batch, o); !s.ok()) return s;
    model.Forward(batch, o);
    parts.push_back(captured.to(torch::kFloat32));
  }
  return torch::cat(parts, 0);
}

absl::StatusOr<std::unique_ptr<ActivationSource>> ActivationSource::Create(std::shared_ptr<CausalLM> model,
                                                                           const Tokenizer& tokenizer,
                                                                           const std::string& text,
                                                                           const ActivationSourceOptions& options) {
  if (model == nullptr) return absl::InvalidArgumentError("no model");
  absl::StatusOr<HookPoint> hook = HookPoint::Parse(options.hook);
  if (!hook.ok()) return Invalid("hook", hook.status().message());
  if (hook->layer >= model->NumLayers()) {
    return Invalid("hook", absl::StrCat("names layer ", hook->layer, " but the model has ", model->NumLayers(),
                                        " layers (0..", model->NumLayers() - 1, ")"));
  }
  if (options.skip_positions < 0) return Invalid("skip_positions", "must be >= 0");
  const int64_t T = options.context_length;
  if (T < options.skip_positions + 1 || T < 2) {
    return Invalid("context_length", absl::StrCat("is ", T, "; it must be at least 2 and exceed skip_positions (",
                                                  options.skip_positions, ")"));
  }
  if (T > model->MaxPositions()) {
    return Invalid("context_length",
                   absl::StrCat("is ", T, " but the model has ", model->MaxPositions(), " positions"));
  }
  if (options.shuffle_buffer < 0) return Invalid("shuffle_buffer", "must be >= 0");

  std::optional<int32_t> bos = tokenizer.bos_id();
  if (!bos.has_value()) bos = tokenizer.eos_id();
  const bool prepend = options.prepend_bos && bos.has_value();
  const std::vector<int32_t> body = tokenizer.Encode(text, /*add_special_tokens=*/false);
  const int64_t per_sequence = prepend ? T - 1 : T;
  const int64_t n_sequences = static_cast<int64_t>(body.size()) / per_sequence;
  if (n_sequences < 1) {
    return Invalid("corpus", absl::StrCat("gives ", body.size(), " tokens, fewer than one sequence of ",
                                          per_sequence, " (context_length ", T, ")"));
  }
  for (int32_t id : body) {
    if (id < 0 || id >= model->VocabSize()) {
      return Invalid("tokenizer", absl::StrCat("gives token id ", id, " but the model's vocabulary has ",
                                               model->VocabSize(), " tokens; is it the model's tokenizer?"));
    }
  }

  auto src = std::unique_ptr<ActivationSource>(new ActivationSource());
  src->model_ = std::move(model);
  src->options_ = options;
  src->options_.batch_sequences = std::max<int64_t>(options.batch_sequences, 1);
  src->hook_ = *hook;
  src->sequences_ = torch::empty({n_sequences, T}, torch::kLong);
  auto acc = src->sequences_.accessor<int64_t, 2>();
  for (int64_t s = 0; s < n_sequences; ++s) {
    int64_t t = 0;
    if (prepend) acc[s][t++] = *bos;
    for (int64_t i = 0; i < per_sequence; ++i) acc[s][t++] = body[s * per_sequence + i];
  }
  src->rng_.seed(options.seed);
  return src;
}

int64_t ActivationSource::d_model() const { return model_->DModel(); }

int64_t ActivationSource::rows_per_epoch() const {
  return sequences_.size(0) * (sequences_.size(1) - options_.skip_positions);
}

absl::Status ActivationSource::Refill() {
  const int64_t n_seq = sequences_.size(0);
  const int64_t first = next_sequence_;
  const int64_t take = std::min(options_.batch_sequences, n_seq - next_sequence_);
  const torch::Tensor batch = sequences_.slice(0, next_sequence_, next_sequence_ + take);
  next_sequence_ += take;
  if (next_sequence_ == n_seq) {
    next_sequence_ = 0;
    ++epochs_;
  }
  absl::StatusOr<torch::Tensor> acts = CollectActivations(*model_, batch, hook_, take);
  if (!acts.ok()) return acts.status();
  const int64_t skip = options_.skip_positions;
  torch::Tensor rows = acts->slice(1, skip).reshape({-1, acts->size(2)});
  torch::Tensor ids = batch.slice(1, skip).reshape({-1});
  const int64_t T = sequences_.size(1);
  torch::Tensor keys =
      (torch::arange(first, first + take, torch::kLong).unsqueeze(1) * T + torch::arange(skip, T, torch::kLong))
          .reshape({-1});
  if (pending_acts_.defined() && pending_acts_.size(0) > 0) {
    pending_acts_ = torch::cat({pending_acts_, rows}, 0);
    pending_ids_ = torch::cat({pending_ids_, ids}, 0);
    pending_rows_ = torch::cat({pending_rows_, keys}, 0);
  } else {
    pending_acts_ = rows;
    pending_ids_ = ids;
    pending_rows_ = keys;
  }
  return absl::OkStatus();
}

absl::StatusOr<ActivationBatch> ActivationSource::Next(int64_t n) {
  if (n < 1) return Invalid("n", "must be >= 1");
  // Without shuffling the buffer only needs n rows; with it, enough rows that
  // a draw mixes many sequences.
  const int64_t want = std::max(n, options_.shuffle_buffer);
  while (!pending_acts_.defined() || pending_acts_.size(0) < want) {
    if (absl::Status s = Refill(); !s.ok()) return s;
  }
  ActivationBatch out;
  if (options_.shuffle_buffer == 0) {
    out.acts = pending_acts_.slice(0, 0, n).clone();
    out.token_ids = pending_ids_.slice(0, 0, n).clone();
    pending_acts_ = pending_acts_.slice(0, n);
    pending_ids_ = pending_ids_.slice(0, n);
    pending_rows_ = pending_rows_.slice(0, n);
    return out;
  }
  // Draw n random rows from the buffer; the rest stay for later draws.
  const int64_t size = pending_acts_.size(0);
  std::vector<int64_t> order(size);
  for (int64_t i = 0; i < size; ++i) order[i] = i;
  for (int64_t i = 0; i < n; ++i) {
    std::uniform_int_distribution<int64_t> pick(i, size - 1);
    std::swap(order[i], order[pick(rng_)]);
  }
  const torch::Tensor idx = torch::tensor(order, torch::kLong);
  const torch::Tensor taken = idx.slice(0, 0, n), kept = idx.slice(0, n);
  const torch::Tensor taken_dev = taken.to(pending_acts_.device()), kept_dev = kept.to(pending_acts_.device());
  out.acts = pending_acts_.index_select(0, taken_dev);
  out.token_ids = pending_ids_.index_select(0, taken);
  pending_acts_ = pending_acts_.index_select(0, kept_dev);
  pending_ids_ = pending_ids_.index_select(0, kept);
  pending_rows_ = pending_rows_.index_select(0, kept);
  return out;
}

std::map<std::string, torch::Tensor> ActivationSource::Position() const {
  std::ostringstream rng;
  rng << rng_;
  const std::string text = rng.str();
  std::map<std::string, torch::Tensor> p;
  p["next_sequence"] = torch::full({1}, next_sequence_, torch::kLong);
  p["epochs"] = torch::full({1}, epochs_, torch::kLong);
  p["pending_rows"] = pending_rows_.defined() ? pending_rows_.clone() : torch::empty({0}, torch::kLong);
  p["rng"] = torch::from_blob(const_cast<char*>(text.data()), {static_cast<int64_t>(text.size())}, torch::kUInt8)
                 .clone();
  return p;
}

absl::Status ActivationSource::Restore(const std::map<std::string, torch::Tensor>& position) {
  for (const char* name : {"next_sequence", "epochs", "pending_rows", "rng"}) {
    if (position.count(name) == 0) return Invalid("position", absl::StrCat("lacks '", name, "'"));
  }
  const int64_t n_seq = sequences_.size(0), T = sequences_.size(1);
  const int64_t next = position.at("next_sequence").item<int64_t>();
  if (next < 0 || next >= n_seq) {
    return Invalid("position", absl::StrCat("next_sequence ", next, " is outside this corpus's ", n_seq,
                                            " sequences"));
  }
  const torch::Tensor keys = position.at("pending_rows").to(torch::kLong).reshape({-1}).contiguous();
  const torch::Tensor seq_of = keys.div(T, "floor"), pos_of = keys.remainder(T);
  if (keys.numel() > 0 && (seq_of.min().item<int64_t>() < 0 || seq_of.max().item<int64_t>() >= n_seq ||
                           pos_of.min().item<int64_t>() < options_.skip_positions)) {
    return Invalid("position", "pending_rows do not fit this corpus and skip_positions");
  }
  const torch::Tensor rng_bytes = position.at("rng").to(torch::kUInt8).contiguous();
  std::istringstream rng(std::string(reinterpret_cast<const char*>(rng_bytes.data_ptr<uint8_t>()),
                                     static_cast<size_t>(rng_bytes.numel())));
  std::mt19937_64 restored;
  if (!(rng >> restored)) return Invalid("position", "rng is not a generator state");

  // Recompute the buffered rows from their sequences.
  torch::Tensor acts;
  if (keys.numel() > 0) {
    const torch::Tensor seqs = std::get<0>(at::_unique(seq_of, /*sorted=*/true, /*return_inverse=*/false));
    absl::StatusOr<torch::Tensor> all =
        CollectActivations(*model_, sequences_.index_select(0, seqs), hook_, options_.batch_sequences);
    if (!all.ok()) return all.status();
    const torch::Tensor slot = torch::searchsorted(seqs, seq_of);  // each key's row in `all`
    acts = all->reshape({-1, all->size(2)}).index_select(0, (slot * T + pos_of).to(all->device()));
  }
  next_sequence_ = next;
  epochs_ = position.at("epochs").item<int64_t>();
  rng_ = restored;
  if (keys.numel() > 0) {
    pending_rows_ = keys.clone();
    pending_ids_ = sequences_.reshape({-1}).index_select(0, seq_of * T + pos_of);
    pending_acts_ = acts;
  } else {
    pending_rows_ = pending_ids_ = pending_acts_ = torch::Tensor();
  }
  return absl::OkStatus();
}

}  // namespace loupe::lm
