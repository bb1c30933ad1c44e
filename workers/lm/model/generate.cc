#include "workers/lm/model/generate.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace loupe::lm {
namespace {

// Puts a module in eval() for a scope and restores its mode after.
class EvalModeScope {
 public:
  explicit EvalModeScope(torch::nn::Module& m) : m_(m), was_training_(m.is_training()) { m_.eval(); }
  ~EvalModeScope() { m_.train(was_training_); }

 private:
  torch::nn::Module& m_;
  bool was_training_;
};

absl::Status CheckOptions(const GenerateOptions& o) {
  if (o.max_new_tokens < 0) return absl::InvalidArgumentError("max_new_tokens must be >= 0");
  if (o.do_sample) {
    if (!(o.temperature > 0)) return absl::InvalidArgumentError("temperature must be > 0 when sampling");
    if (o.top_k < 0) return absl::InvalidArgumentError("top_k must be >= 0 (0: off)");
    if (!(o.top_p > 0 && o.top_p <= 1)) return absl::InvalidArgumentError("top_p must be in (0, 1] (1: off)");
  }
  return absl::OkStatus();
}

}  // namespace

torch::Tensor SampleNextTokens(const torch::Tensor& logits, const GenerateOptions& o, at::Generator& gen) {
  torch::Tensor l = logits.detach().to(torch::kCPU, torch::kFloat);
  if (!o.do_sample) return l.argmax(-1);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  l = l / o.temperature;
  const int64_t V = l.size(-1);
  if (o.top_k > 0 && o.top_k < V) {
    // Ties with the k-th largest logit stay in.
    torch::Tensor kth = std::get<0>(l.topk(o.top_k, -1)).narrow(-1, o.top_k - 1, 1);
    l = l.masked_fill(l < kth, neg_inf);
  }
  if (o.top_p < 1) {
    auto [sorted, order] = l.sort(-1, /*descending=*/true);
    torch::Tensor p = sorted.softmax(-1);
    // Drop a token when the strictly more likely ones already reach top_p:
    // what is kept is the smallest head of the distribution with mass >=
    // top_p (never empty, since the first token has nothing before it).
    torch::Tensor drop = (p.cumsum(-1) - p) >= o.top_p;
    l = torch::empty_like(l).scatter(-1, order, sorted.masked_fill(drop, neg_inf));
  }
  return torch::multinomial(l.softmax(-1), 1, /*replacement=*/false, gen).squeeze(-1);
}

absl::StatusOr<GenerateResult> Generate(CausalLM& model, const torch::Tensor& prompt, const GenerateOptions& o) {
  if (absl::Status s = CheckOptions(o); !s.ok()) return s;
  ForwardOptions fo;
  fo.hooks = o.hooks;
  if (absl::Status s = model.CheckForward(prompt, fo); !s.ok()) return s;
  const int64_t B = prompt.size(0), T = prompt.size(1), total = T + o.max_new_tokens;
  const ModelConfig& c = model.config();
  if (c.architecture == Architecture::kGpt2 && total > c.max_positions) {
    return absl::InvalidArgumentError(absl::StrCat("prompt of ", T, " tokens + max_new_tokens ", o.max_new_tokens,
                                                   " exceeds GPT-2's n_positions ", c.max_positions));
  }
  if (c.sliding_window.has_value() && total > *c.sliding_window) {
    return absl::UnimplementedError(absl::StrCat("prompt of ", T, " tokens + max_new_tokens ", o.max_new_tokens,
                                                 " exceeds sliding_window ", *c.sliding_window,
                                                 "; sliding-window attention is not implemented"));
  }

  EvalModeScope eval(model);
  torch::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  KVCache cache;
  if (o.use_cache) fo.cache = &cache;

  torch::Tensor seq = prompt.to(torch::kCPU, torch::kLong);
  torch::Tensor input = seq;  // what the next Forward sees
  std::vector<bool> done(B, false);
  std::vector<int64_t> pad(B, 0);
  GenerateResult result;
  result.new_tokens.assign(B, 0);
  try {
    for (int64_t step = 0; step < o.max_new_tokens; ++step) {
      torch::Tensor logits = model.Forward(input, fo);  // [B, t, V]
      torch::Tensor next = SampleNextTokens(logits.select(1, -1), o, gen).contiguous();
      int64_t* n = next.data_ptr<int64_t>();
      for (int64_t b = 0; b < B; ++b) {
        if (done[b]) {
          n[b] = pad[b];
          continue;
        }
        ++result.new_tokens[b];
        if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), n[b]) != o.stop_tokens.end()) {
          done[b] = true;
          pad[b] = n[b];
        }
      }
      seq = torch::cat({seq, next.unsqueeze(1)}, 1);
      input = o.use_cache ? next.unsqueeze(1) : seq;
      if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("generation failed: ", e.what_without_backtrace()));
  }
  result.tokens = seq;
  return result;
}

}  // namespace loupe::lm
