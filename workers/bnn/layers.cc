#include "workers/bnn/layers.h"

#include <cmath>

#include "workers/bnn/quantizers.h"

namespace loupe::bnn {
namespace {

namespace F = torch::nn::functional;

constexpr double kBnMomentum = 0.1;  // PyTorch convention: 1 − Flax's 0.9
constexpr double kBnEps = 1e-5;

torch::nn::BatchNorm2d MakeBn(int64_t channels) {
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(channels).momentum(kBnMomentum).eps(kBnEps));
}

int64_t Padding(const ConvPlan& p) { return p.same_padding ? p.kernel / 2 : 0; }

}  // namespace

QuantConvImpl::QuantConvImpl(const ConvPlan& plan, double clip_bound, bool with_bias, InputQuant input_quant)
    : plan_(plan), clip_bound_(clip_bound), input_quant_(input_quant) {
  const int64_t fan_in = plan.kernel * plan.kernel * (plan.in_channels / plan.groups);
  // Kaiming-uniform as torch.nn.Conv2d.
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  weight = register_parameter(
      "weight", torch::empty({plan.out_channels, plan.in_channels / plan.groups, plan.kernel, plan.kernel})
                    .uniform_(-bound, bound));
  if (with_bias) bias = register_parameter("bias", torch::zeros({plan.out_channels}));
}

void QuantConvImpl::SetPacked(bool packed) {
  if (packed && binary()) {
    packed_ = PackWeights(weight);
  } else {
    packed_.reset();
  }
}

torch::Tensor QuantConvImpl::ForwardPacked(const torch::Tensor& x) {
  const torch::Tensor dots = BinaryConv2d(x, *packed_, plan_.stride, Padding(plan_));
  const torch::Tensor scale = BinaryWeightScale(weight).to(torch::kCPU).reshape({1, -1, 1, 1});
  torch::Tensor y = dots.to(torch::kFloat) * (scale * (clip_bound_ / 2.0));
  if (bias.defined()) y = y + bias.detach().to(torch::kCPU).reshape({1, -1, 1, 1});
  return y.to(x.device());
}

torch::Tensor QuantConvImpl::forward(const torch::Tensor& x) {
  if (packed_ && !is_training()) return ForwardPacked(x);
  torch::Tensor xq = x, wq = weight;
  if (plan_.w_bits == 1) {
    xq = BinarizeActivation(x, clip_bound_);
    wq = BinarizeWeight(weight);
  } else if (plan_.w_bits < 32) {
    xq = QuantizeActivation(x, plan_.a_bits, input_quant_ == InputQuant::kUnsigned);
    wq = QuantizeWeight(weight, plan_.w_bits);
  }
  return F::conv2d(xq, wq,
                   F::Conv2dFuncOptions().bias(bias).stride(plan_.stride).padding(Padding(plan_)).groups(
                       plan_.groups));
}

DPReLUImpl::DPReLUImpl(int64_t channels) {
  pos_slope = register_parameter("pos_slope", torch::ones({channels}));
  neg_slope = register_parameter("neg_slope", torch::full({channels}, 0.25));
  bias_x = register_parameter("bias_x", torch::zeros({channels}));
  bias_y = register_parameter("bias_y", torch::zeros({channels}));
}

torch::Tensor DPReLUImpl::forward(const torch::Tensor& x) {
  auto per_channel = [](const torch::Tensor& v) { return v.reshape({1, -1, 1, 1}); };
  const torch::Tensor d = x - per_channel(bias_x);
  return torch::where(d >= 0, d * per_channel(pos_slope), d * per_channel(neg_slope)) - per_channel(bias_y);
}

torch::Tensor ReshapeResidual(const torch::Tensor& r_in, int64_t channels, int64_t height, bool tile) {
  torch::Tensor r = r_in;
  if (r.size(2) != height) {
    r = F::avg_pool2d(r, F::AvgPool2dFuncOptions(3).stride(2).padding(1).count_include_pad(true));
  }
  const int64_t c = r.size(1);
  if (c > channels) {
    TORCH_CHECK(c % channels == 0, "residual channels ", c, " not a multiple of ", channels);
    r = r.reshape({r.size(0), channels, c / channels, r.size(2), r.size(3)}).mean(2);
  } else if (c < channels) {
    if (tile) {
      TORCH_CHECK(channels % c == 0, "residual channels ", channels, " not a multiple of ", c);
      r = r.repeat({1, channels / c, 1, 1});
    } else {
      r = F::pad(r, F::PadFuncOptions({0, 0, 0, 0, 0, channels - c}));
    }
  }
  return r;
}

PokeConvImpl::PokeConvImpl(const PokeConvPlan& plan, double clip_bound) : plan_(plan) {
  conv = register_module("conv", QuantConv(plan.conv, clip_bound, false, InputQuant::kSigned));
  bn = register_module("bn", MakeBn(plan.conv.out_channels));
  if (plan.zero_init_bn) bn->weight.data().zero_();
  act = register_module("act", DPReLU(plan.conv.out_channels));
  if (plan.has_se) {
    se_reduce = register_module("se_reduce", QuantConv(plan.se_reduce, clip_bound, true, InputQuant::kSigned));
    se_expand = register_module("se_expand", QuantConv(plan.se_expand, clip_bound, true, InputQuant::kUnsigned));
    bn_out = register_module("bn_out", MakeBn(plan.conv.out_channels));
  }
  if (plan.learnable_shift) shift = register_parameter("shift", torch::zeros({plan.conv.in_channels}));
}

torch::Tensor PokeConvImpl::SeGate(const torch::Tensor& x) {
  torch::Tensor s = x.mean({2, 3}, /*keepdim=*/true);
  s = torch::relu(se_reduce->forward(s));
  s = se_expand->forward(s);
  return torch::clamp(s + 3.0, 0.0, 6.0) / 6.0;  // hard sigmoid
}

torch::Tensor PokeConvImpl::forward(const torch::Tensor& x, const torch::Tensor& block_input) {
  const torch::Tensor in = plan_.learnable_shift ? x + shift.reshape({1, -1, 1, 1}) : x;
  torch::Tensor y = bn->forward(conv->forward(in));
  const int64_t c = plan_.conv.out_channels, h = plan_.conv.out_h;
  y = y + ReshapeResidual(x, c, h, /*tile=*/plan_.learnable_shift);
  if (plan_.block_residual) y = y + ReshapeResidual(block_input, c, h, /*tile=*/true);
  y = act->forward(y);
  if (plan_.has_se) y = bn_out->forward(y * SeGate(x));
  return y;
}

}  // namespace loupe::bnn
