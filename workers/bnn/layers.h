// LibTorch layers of PokeBNN: quantized convolution, DPReLU, the SE gate and
// PokeConv. Each module is built from its ConvPlan/PokeConvPlan (see
// network_plan.h). Modules are not thread-safe (LibTorch modules hold
// state); parameters live on the device the module was moved to.
#ifndef LOUPE_WORKERS_BNN_LAYERS_H_
#define LOUPE_WORKERS_BNN_LAYERS_H_

#include <torch/torch.h>

#include <memory>
#include <optional>

#include "workers/bnn/network_plan.h"
#include "workers/bnn/packed_conv.h"

namespace loupe::bnn {

// How a convolution's inputs are quantized.
enum class InputQuant {
  kSigned,    // symmetric around 0
  kUnsigned,  // inputs ≥ 0 (after ReLU), uint levels
};

// A convolution with its plan's bit widths: 1 → binarize (activations with
// clip bound B, weights per output channel), 2–8 → fake-quantize, 32 → float.
// In packed mode (eval only, binary convs only) the ±1 products come from the
// XNOR-popcount kernel and are rescaled by (B/2)·(max|w_o|/2).
class QuantConvImpl : public torch::nn::Module {
 public:
  QuantConvImpl(const ConvPlan& plan, double clip_bound, bool bias, InputQuant input_quant);
  torch::Tensor forward(const torch::Tensor& x);

  bool binary() const { return plan_.w_bits == 1; }
  // Switches packed inference on (packs the current weights) or off.
  void SetPacked(bool packed);
  const ConvPlan& plan() const { return plan_; }
  double clip_bound() const { return clip_bound_; }
  torch::Tensor weight;
  torch::Tensor bias;  // undefined without bias

 private:
  torch::Tensor ForwardPacked(const torch::Tensor& x);
  ConvPlan plan_;
  double clip_bound_;
  InputQuant input_quant_;
  std::optional<PackedWeights> packed_;
};
TORCH_MODULE(QuantConv);

// DPReLU per channel: y = s·(x − b_x) − b_y with s = pos_slope where
// x − b_x ≥ 0 (init 1) and neg_slope elsewhere (init 0.25); b_x, b_y init 0.
class DPReLUImpl : public torch::nn::Module {
 public:
  explicit DPReLUImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor pos_slope, neg_slope, bias_x, bias_y;
};
TORCH_MODULE(DPReLU);

// Fits `r` ([N, C_r, H_r, W_r]) to [C, H, W] for a residual add: spatial
// mismatch → 3×3/s2 average pool (padding counted); more channels → mean of
// consecutive groups; fewer → zero-pad (`tile` false) or repeat (`tile` true).
torch::Tensor ReshapeResidual(const torch::Tensor& r, int64_t channels, int64_t height, bool tile);

// PokeConv (plan.has_se) or a ReActNet conv (plan.learnable_shift):
// conv → BN → + local residual (→ + block residual) → DPReLU → × SE(input) → BN.
class PokeConvImpl : public torch::nn::Module {
 public:
  PokeConvImpl(const PokeConvPlan& plan, double clip_bound);
  // `block_input`: the bottleneck's input, added when plan.block_residual.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& block_input = {});
  QuantConv conv{nullptr};

 private:
  torch::Tensor SeGate(const torch::Tensor& x);
  PokeConvPlan plan_;
  torch::nn::BatchNorm2d bn{nullptr}, bn_out{nullptr};
  DPReLU act{nullptr};
  QuantConv se_reduce{nullptr}, se_expand{nullptr};
  torch::Tensor shift;  // ReActNet's learnable threshold, per input channel
};
TORCH_MODULE(PokeConv);

}  // namespace loupe::bnn

#endif  // LOUPE_WORKERS_BNN_LAYERS_H_
