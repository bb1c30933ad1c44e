#include "workers/sae/jumprelu.h"

namespace loupe::sae {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

torch::Tensor InKernel(const torch::Tensor& pre, const torch::Tensor& threshold, double bandwidth) {
  return ((pre - threshold).abs() < bandwidth / 2).to(pre.scalar_type());
}

struct JumpReluFunction : public torch::autograd::Function<JumpReluFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& pre, const torch::Tensor& threshold,
                               double bandwidth) {
    ctx->save_for_backward({pre, threshold});
    ctx->saved_data["bandwidth"] = bandwidth;
    return pre * (pre > threshold).to(pre.scalar_type());
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &pre = saved[0], &threshold = saved[1];
    const double bandwidth = ctx->saved_data["bandwidth"].toDouble();
    const torch::Tensor& g = grads[0];
    torch::Tensor grad_pre = g * (pre > threshold).to(g.scalar_type());
    torch::Tensor grad_threshold =
        (-(threshold / bandwidth) * InKernel(pre, threshold, bandwidth) * g).sum(0);
    return {grad_pre, grad_threshold, torch::Tensor()};
  }
};

struct StepFunction : public torch::autograd::Function<StepFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& pre, const torch::Tensor& threshold,
                               double bandwidth) {
    ctx->save_for_backward({pre, threshold});
    ctx->saved_data["bandwidth"] = bandwidth;
    return (pre > threshold).to(pre.scalar_type());
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &pre = saved[0], &threshold = saved[1];
    const double bandwidth = ctx->saved_data["bandwidth"].toDouble();
    torch::Tensor grad_threshold = (-(1.0 / bandwidth) * InKernel(pre, threshold, bandwidth) * grads[0]).sum(0);
    return {torch::zeros_like(pre), grad_threshold, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor JumpRelu(const torch::Tensor& pre, const torch::Tensor& threshold, double bandwidth) {
  return JumpReluFunction::apply(pre, threshold, bandwidth);
}

torch::Tensor JumpReluStep(const torch::Tensor& pre, const torch::Tensor& threshold, double bandwidth) {
  return StepFunction::apply(pre, threshold, bandwidth);
}

torch::Tensor SmoothedStep(const torch::Tensor& pre, const torch::Tensor& threshold, double bandwidth) {
  return ((pre - threshold) / bandwidth + 0.5).clamp(0, 1);
}

torch::Tensor SmoothedJumpRelu(const torch::Tensor& pre, const torch::Tensor& threshold, double bandwidth) {
  const torch::Tensor lo = pre - bandwidth / 2;
  const torch::Tensor t = torch::max(threshold.expand_as(pre), lo);
  const torch::Tensor inside = pre - (t * t - lo * lo) / (2 * bandwidth);
  return torch::where(threshold >= pre + bandwidth / 2, torch::zeros_like(pre), inside);
}

}  // namespace loupe::sae
