#include "workers/sae/gathered_linear.h"

namespace loupe::sae {
namespace {

// Start of each of n groups in `sorted` (ascending group ids).
torch::Tensor GroupOffsets(const torch::Tensor& sorted, int64_t n) {
  return torch::searchsorted(sorted, torch::arange(n, sorted.options()));
}

torch::Tensor WeightedBagSums(const torch::Tensor& table, const torch::Tensor& indices, const torch::Tensor& offsets,
                              const torch::Tensor& weights) {
  return std::get<0>(torch::embedding_bag(table, indices, offsets, /*scale_grad_by_freq=*/false, /*mode=sum*/ 0,
                                          /*sparse=*/false, weights));
}

class GatheredLinearFunction : public torch::autograd::Function<GatheredLinearFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& pre,
                               const torch::Tensor& bias, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& rows, const torch::Tensor& cols) {
    ctx->save_for_backward({x, weight, rows, cols});
    ctx->saved_data["n"] = pre.size(0);
    ctx->saved_data["m"] = pre.size(1);
    return pre.reshape(-1).index_select(0, rows * pre.size(1) + cols);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1], &rows = saved[2], &cols = saved[3];
    const int64_t n = ctx->saved_data["n"].toInt(), m = ctx->saved_data["m"].toInt();
    const torch::Tensor g = grads[0].contiguous();
    torch::Tensor grad_bias, grad_x, grad_weight;
    if (ctx->needs_input_grad(1)) grad_bias = torch::zeros({m}, g.options()).index_add_(0, cols, g);
    if (ctx->needs_input_grad(2)) {
      // dx[r] = sum over r's entries of g * weight[col].
      grad_x = WeightedBagSums(weight, cols, GroupOffsets(rows, n), g);
    }
    if (ctx->needs_input_grad(3)) {
      // dW[c] = sum over c's entries of g * x[row].
      const torch::Tensor order = cols.argsort();
      const torch::Tensor by_col = cols.index_select(0, order);
      grad_weight = WeightedBagSums(x.contiguous(), rows.index_select(0, order), GroupOffsets(by_col, m),
                                    g.index_select(0, order));
    }
    return {torch::Tensor(), grad_bias, grad_x, grad_weight, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor GatheredLinear(const torch::Tensor& pre, const torch::Tensor& bias, const torch::Tensor& x,
                             const torch::Tensor& weight, const torch::Tensor& rows, const torch::Tensor& cols) {
  return GatheredLinearFunction::apply(pre.detach(), bias, x, weight, rows, cols);
}

torch::Tensor SumRowsOfTable(const torch::Tensor& table, const torch::Tensor& rows, const torch::Tensor& cols,
                             const torch::Tensor& values, int64_t n) {
  return WeightedBagSums(table, cols, GroupOffsets(rows, n), values);
}

}  // namespace loupe::sae
