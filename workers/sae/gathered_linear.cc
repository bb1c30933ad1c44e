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

// out[r] = sum over r's entries of values * table[col]. Autograd's own
// embedding_bag backward builds the table's gradient entry by entry; grouping
// the entries by latent turns it into one more weighted bag sum.
class SumRowsOfTableFunction : public torch::autograd::Function<SumRowsOfTableFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& table,
                               const torch::Tensor& rows, const torch::Tensor& cols, const torch::Tensor& values,
                               int64_t n) {
    const torch::Tensor offsets = GroupOffsets(rows, n);
    ctx->save_for_backward({table, rows, cols, values, offsets});
    return WeightedBagSums(table, cols, offsets, values);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &table = saved[0], &rows = saved[1], &cols = saved[2], &values = saved[3],
                        &offsets = saved[4];
    const torch::Tensor dy = grads[0].contiguous();
    torch::Tensor grad_table, grad_values;
    if (ctx->needs_input_grad(0)) {
      // dtable[c] = sum over c's entries of values * dy[row].
      const torch::Tensor order = cols.argsort();
      grad_table = WeightedBagSums(dy, rows.index_select(0, order),
                                   GroupOffsets(cols.index_select(0, order), table.size(0)),
                                   values.index_select(0, order));
    }
    if (ctx->needs_input_grad(3)) {
      // dvalues[t] = dy[row_t] · table[col_t]; `rows` is each entry's bag.
      grad_values = at::_embedding_bag_per_sample_weights_backward(dy, table, cols, offsets, rows, /*mode=sum*/ 0);
    }
    return {grad_table, torch::Tensor(), torch::Tensor(), grad_values, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor GatheredLinear(const torch::Tensor& pre, const torch::Tensor& bias, const torch::Tensor& x,
                             const torch::Tensor& weight, const torch::Tensor& rows, const torch::Tensor& cols) {
  return GatheredLinearFunction::apply(pre.detach(), bias, x, weight, rows, cols);
}

torch::Tensor SumRowsOfTable(const torch::Tensor& table, const torch::Tensor& rows, const torch::Tensor& cols,
                             const torch::Tensor& values, int64_t n) {
  return SumRowsOfTableFunction::apply(table, rows, cols, values, n);
}

}  // namespace loupe::sae
