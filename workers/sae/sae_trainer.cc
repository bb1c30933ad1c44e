#include "workers/sae/sae_trainer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "workers/sae/geometric_median.h"
#include "workers/sae/jumprelu.h"
#include "workers/sae/lr_schedule.h"
#include "workers/sae/gathered_linear.h"

namespace loupe::sae {
namespace {

// sum ||target - estimate||^2 / sum ||target - mean(target)||^2; the floor
// keeps a constant batch (zero variance) from dividing by zero.
torch::Tensor NormalisedError(const torch::Tensor& target, const torch::Tensor& estimate) {
  torch::Tensor variance = (target - target.mean(0, true)).pow(2).sum().detach();
  return (target - estimate).pow(2).sum() / variance.clamp_min(1e-12);
}

torch::Tensor Leaf(torch::Tensor t, torch::Device device) {
  return t.to(device, torch::kFloat).contiguous().requires_grad_(true);
}

// Row i of [n, k] repeated k times: the row ids of a [n, k] selection, flattened.
torch::Tensor RowIds(int64_t n, int64_t k, const torch::TensorOptions& options) {
  return torch::arange(n, options).unsqueeze(1).expand({n, k}).reshape(-1);
}

// The key LibTorch's optimizers file a parameter's state under.
std::string StateKey(const torch::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

}  // namespace

SaeTrainer::SaeTrainer(const SaeTrainerOptions& options, torch::Device device, at::Generator& gen)
    : options_(options), dead_(options.d_sae, options.dead_window_tokens, device) {
  TORCH_CHECK(options.d_in > 0 && options.d_sae > 0, "SaeTrainer: bad sizes");
  torch::NoGradGuard no_grad;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  // Decoder rows: random unit vectors; encoder = decoder^T, so each latent
  // starts out reading its own direction (OpenAI/sparsify, Anthropic).
  torch::Tensor w = torch::randn({options.d_sae, options.d_in}, gen, f32);
  w = w / w.norm(2, 1, true).clamp_min(1e-12);
  W_dec_ = Leaf(w, device);
  encoder_ = Leaf(w.clone(), device);  // W_enc^T, its own storage
  b_enc_ = Leaf(torch::zeros({options.d_sae}, f32), device);
  b_dec_ = Leaf(torch::zeros({options.d_in}, f32), device);
  if (options.architecture == SaeArchitecture::kJumpRelu) {
    log_threshold_ = Leaf(torch::full({options.d_sae}, std::log(options.init_threshold), f32), device);
  }
  batch_threshold_ = torch::full({}, -1.0, f32.device(device));
  adam_ = std::make_unique<torch::optim::Adam>(
      Parameters(), torch::optim::AdamOptions(options_.lr).betas({0.9, 0.999}).eps(6.25e-10));
}

std::vector<torch::Tensor> SaeTrainer::Parameters() const {
  std::vector<torch::Tensor> p = {encoder_, b_enc_, W_dec_, b_dec_};
  if (log_threshold_.defined()) p.push_back(log_threshold_);
  return p;
}

void SaeTrainer::InitDecoderBias(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  b_dec_.copy_(GeometricMedian(Normalized(x.to(b_dec_.device(), torch::kFloat))));
}

double SaeTrainer::LearningRate(int64_t step) const {
  return WarmupDecayLearningRate(options_.lr, options_.warmup_steps, options_.decay_fraction, options_.total_steps,
                                 step);
}

torch::Tensor SaeTrainer::AuxK(const torch::Tensor& x, const torch::Tensor& xc, const torch::Tensor& x_hat,
                               const torch::Tensor& pre, const torch::Tensor& dead, int64_t n_dead) {
  const int64_t half = std::max<int64_t>(1, options_.d_in / 2);
  const int64_t k_aux = std::min(half, n_dead);
  const int64_t batch = x.size(0);
  torch::Tensor rows, cols;
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor dead_ids = dead.nonzero().reshape(-1);
    const torch::Tensor local = std::get<1>(pre.index_select(1, dead_ids).topk(k_aux, 1, true, false));
    rows = RowIds(batch, k_aux, local.options());
    cols = dead_ids.index_select(0, local.reshape(-1));
  }
  const torch::Tensor aux = torch::relu(GatheredLinear(pre, b_enc_, xc, encoder_, rows, cols));
  const torch::Tensor residual = (x - x_hat).detach();
  return NormalisedError(residual, SumRowsOfTable(W_dec_, rows, cols, aux, batch));
}

torch::Tensor SaeTrainer::Normalized(const torch::Tensor& x) const {
  return options_.input_norm == InputNorm::kLayerNorm ? LayerNormRows(x).x : x;
}

TrainStepStats SaeTrainer::Step(const torch::Tensor& x_given) {
  const torch::Tensor x = Normalized(x_given);
  ++step_;
  TrainStepStats stats;
  stats.step = step_;
  stats.lr = LearningRate(step_);
  for (auto& group : adam_->param_groups()) {
    static_cast<torch::optim::AdamOptions&>(group.options()).lr(stats.lr);
  }
  const int64_t batch = x.size(0);
  // TopK and BatchTopK keep k per row (on average) of d_sae pre-activations:
  // the dense pre-activations are computed once without autograd (into a
  // reused buffer), and only the kept entries carry gradients
  // (gathered_linear.h), so the backward pass and the decoder never touch a
  // [batch, d_sae] matrix. relu and jumprelu go through autograd densely.
  const bool sparse = options_.architecture == SaeArchitecture::kTopK ||
                      options_.architecture == SaeArchitecture::kBatchTopK;
  const torch::Tensor xc = x - b_dec_;
  torch::Tensor pre;
  if (sparse) {
    torch::NoGradGuard no_grad;
    if (!pre_buffer_.defined() || pre_buffer_.size(0) != batch) {
      pre_buffer_ = torch::empty({batch, options_.d_sae}, encoder_.options().requires_grad(false));
    }
    pre = torch::addmm_out(pre_buffer_, b_enc_, xc, encoder_.t());
  } else {
    pre = torch::addmm(b_enc_, xc, encoder_.t());
  }
  torch::Tensor x_hat, fired, sparsity;
  bool aux_eligible = false;
  switch (options_.architecture) {
    case SaeArchitecture::kTopK:
    case SaeArchitecture::kBatchTopK: {
      // The kept entries as (row, latent), rows ascending.
      torch::Tensor rows, cols;
      {
        torch::NoGradGuard no_grad;
        if (options_.architecture == SaeArchitecture::kTopK) {
          const torch::Tensor idx = std::get<1>(pre.topk(options_.k, 1, true, false));
          rows = RowIds(batch, options_.k, idx.options());
          cols = idx.reshape(-1);
        } else {
          const int64_t keep = std::min<int64_t>(options_.k * batch, pre.numel());
          const torch::Tensor flat = std::get<0>(std::get<1>(pre.reshape(-1).topk(keep, 0, true, false)).sort());
          rows = flat.div(options_.d_sae, "floor");
          cols = flat.remainder(options_.d_sae);
        }
      }
      const torch::Tensor values = torch::relu(GatheredLinear(pre, b_enc_, xc, encoder_, rows, cols));
      x_hat = SumRowsOfTable(W_dec_, rows, cols, values, batch) + b_dec_;
      {
        torch::NoGradGuard no_grad;
        const torch::Tensor live = values > 0;
        fired = torch::zeros({options_.d_sae}, cols.options().dtype(torch::kBool));
        fired.index_fill_(0, cols.masked_select(live), true);
        stats.l0 = live.sum().item<double>() / static_cast<double>(batch);
        if (options_.architecture == SaeArchitecture::kBatchTopK) {
          // The inference threshold: a moving average of the smallest kept
          // positive activation.
          const torch::Tensor positive = values.masked_select(live);
          if (positive.numel() > 0) {
            const torch::Tensor smallest = positive.min();
            if (batch_threshold_.item<float>() < 0) {
              batch_threshold_.copy_(smallest);
            } else {
              batch_threshold_.mul_(options_.threshold_momentum)
                  .add_(smallest * (1 - options_.threshold_momentum));
            }
          }
        }
      }
      aux_eligible = true;
      break;
    }
    case SaeArchitecture::kRelu: {
      torch::Tensor z = torch::relu(pre);
      x_hat = torch::addmm(b_dec_, z, W_dec_);
      torch::Tensor rms = (x - x.mean(0, true)).pow(2).sum(1).mean().sqrt().detach().clamp_min(1e-12);
      torch::Tensor weighted_l1 = (z * W_dec_.norm(2, 1)).sum(1).mean() / rms;
      double coefficient = options_.l1_coefficient;
      if (options_.l1_warmup_steps > 0 && step_ <= options_.l1_warmup_steps) {
        coefficient *= static_cast<double>(step_) / static_cast<double>(options_.l1_warmup_steps);
      }
      sparsity = coefficient * weighted_l1;
      {
        torch::NoGradGuard ng;
        fired = (z > 0).any(0);
        stats.l0 = (z > 0).sum().item<double>() / static_cast<double>(batch);
      }
      break;
    }
    case SaeArchitecture::kJumpRelu: {
      torch::Tensor threshold = log_threshold_.exp();
      torch::Tensor z = JumpRelu(pre, threshold, options_.bandwidth);
      x_hat = torch::addmm(b_dec_, z, W_dec_);
      torch::Tensor l0 = JumpReluStep(pre, threshold, options_.bandwidth).sum(1).mean();
      sparsity = options_.l0_coefficient * (l0 / options_.target_l0 - 1).pow(2);
      {
        torch::NoGradGuard ng;
        fired = (z != 0).any(0);
        stats.l0 = l0.item<double>();
      }
      break;
    }
  }
  torch::Tensor fvu = NormalisedError(x, x_hat);
  torch::Tensor loss = fvu;
  if (sparsity.defined()) {
    loss = loss + sparsity;
    stats.sparsity_loss = sparsity.item<double>();
  }
  dead_.UpdateFired(fired, batch);
  torch::Tensor dead = dead_.DeadMask();
  const int64_t n_dead = dead.sum().item<int64_t>();
  if (aux_eligible && n_dead > 0 && options_.auxk_coefficient > 0) {
    torch::Tensor auxk = AuxK(x, xc, x_hat, pre, dead, n_dead);
    const double half = static_cast<double>(std::max<int64_t>(1, options_.d_in / 2));
    loss = loss + options_.auxk_coefficient * std::min(1.0, static_cast<double>(n_dead) / half) * auxk;
    stats.auxk = auxk.item<double>();
  }

  adam_->zero_grad();
  loss.backward();
  {
    torch::NoGradGuard no_grad;
    // Keep the step on the unit sphere's tangent: the norm constraint would
    // otherwise undo the radial part of every step (rows are unit norm here).
    torch::Tensor g = W_dec_.grad();
    if (g.defined()) g.sub_((g * W_dec_).sum(1, true) * W_dec_);
  }
  const std::vector<torch::Tensor> params = Parameters();
  if (options_.grad_clip_norm > 0) {
    stats.grad_norm = torch::nn::utils::clip_grad_norm_(params, options_.grad_clip_norm);
  } else {
    double sq = 0;
    for (const auto& p : params) {
      if (p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
    }
    stats.grad_norm = std::sqrt(sq);
  }
  adam_->step();
  {
    torch::NoGradGuard no_grad;
    W_dec_.div_(W_dec_.norm(2, 1, true).clamp_min(1e-12));
  }
  stats.fvu = fvu.item<double>();
  stats.loss = loss.item<double>();
  stats.dead_fraction = static_cast<double>(n_dead) / static_cast<double>(options_.d_sae);
  return stats;
}

SaeModel SaeTrainer::Model() const {
  SaeModel m;
  m.architecture = options_.architecture;
  m.W_enc = encoder_.detach().t().contiguous();
  m.W_dec = W_dec_.detach().clone();
  m.b_enc = b_enc_.detach().clone();
  m.b_dec = b_dec_.detach().clone();
  m.k = options_.k;
  m.input_norm = options_.input_norm;
  if (options_.architecture == SaeArchitecture::kJumpRelu) m.threshold = log_threshold_.detach().exp();
  if (options_.architecture == SaeArchitecture::kBatchTopK) {
    m.threshold = batch_threshold_.clamp_min(0).expand({options_.d_sae}).clone();
  }
  if (options_.architecture == SaeArchitecture::kRelu || options_.architecture == SaeArchitecture::kJumpRelu) {
    m.k = 0;
  }
  return m;
}

std::map<std::string, torch::Tensor> SaeTrainer::State() const {
  std::map<std::string, torch::Tensor> s;
  const char* names[] = {"W_enc", "b_enc", "W_dec", "b_dec", "log_threshold"};
  const std::vector<torch::Tensor> params = Parameters();
  auto& states = adam_->state();
  // Saved in SAELens's layout: W_enc [d_in, d_sae] (encoder_ transposed).
  auto external = [](size_t i, const torch::Tensor& t) { return (i == 0 ? t.t() : t).contiguous(); };
  for (size_t i = 0; i < params.size(); ++i) {
    s[names[i]] = external(i, params[i].detach().cpu());
    auto it = states.find(StateKey(params[i]));
    if (it != states.end()) {
      auto& st = static_cast<torch::optim::AdamParamState&>(*it->second);
      s[absl::StrCat("adam.", names[i], ".exp_avg")] = external(i, st.exp_avg().cpu());
      s[absl::StrCat("adam.", names[i], ".exp_avg_sq")] = external(i, st.exp_avg_sq().cpu());
      s[absl::StrCat("adam.", names[i], ".step")] = torch::full({1}, st.step(), torch::kLong);
    }
  }
  s["dead.tokens_since_fired"] = dead_.tokens_since_fired().cpu().clone();
  s["batch_threshold"] = batch_threshold_.cpu().reshape({1}).clone();
  s["step"] = torch::full({1}, step_, torch::kLong);
  return s;
}

absl::Status SaeTrainer::LoadState(const std::map<std::string, torch::Tensor>& s) {
  auto get = [&](const std::string& name, const torch::Tensor& like) -> absl::StatusOr<torch::Tensor> {
    auto it = s.find(name);
    if (it == s.end()) return absl::InvalidArgumentError(absl::StrCat("checkpoint lacks '", name, "'"));
    if (like.defined() && it->second.sizes() != like.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint tensor '", name, "' has the wrong shape"));
    }
    return it->second;
  };
  const char* names[] = {"W_enc", "b_enc", "W_dec", "b_dec", "log_threshold"};
  const std::vector<torch::Tensor> params = Parameters();
  torch::NoGradGuard no_grad;
  auto& states = adam_->state();
  // encoder_ is W_enc transposed; the checkpoint holds W_enc's layout.
  auto internal = [](size_t i, const torch::Tensor& t) { return i == 0 ? t.t() : t; };
  for (size_t i = 0; i < params.size(); ++i) {
    absl::StatusOr<torch::Tensor> p = get(names[i], internal(i, params[i]));
    if (!p.ok()) return p.status();
    params[i].copy_(internal(i, *p));
    const std::string prefix = absl::StrCat("adam.", names[i], ".");
    if (s.count(prefix + "step") == 0) continue;  // saved before the first step
    absl::StatusOr<torch::Tensor> m = get(prefix + "exp_avg", internal(i, params[i]));
    absl::StatusOr<torch::Tensor> v = get(prefix + "exp_avg_sq", internal(i, params[i]));
    if (!m.ok()) return m.status();
    if (!v.ok()) return v.status();
    auto st = std::make_unique<torch::optim::AdamParamState>();
    st->step(s.at(prefix + "step").item<int64_t>());
    st->exp_avg(internal(i, *m).to(params[i].device()).contiguous().clone());
    st->exp_avg_sq(internal(i, *v).to(params[i].device()).contiguous().clone());
    states[StateKey(params[i])] = std::move(st);
  }
  absl::StatusOr<torch::Tensor> dead = get("dead.tokens_since_fired", dead_.tokens_since_fired());
  if (!dead.ok()) return dead.status();
  dead_.RestoreTokensSinceFired(dead->to(torch::kLong));
  absl::StatusOr<torch::Tensor> bt = get("batch_threshold", {});
  if (!bt.ok()) return bt.status();
  batch_threshold_.copy_(bt->reshape({}));
  absl::StatusOr<torch::Tensor> step = get("step", {});
  if (!step.ok()) return step.status();
  step_ = step->item<int64_t>();
  return absl::OkStatus();
}

}  // namespace loupe::sae
