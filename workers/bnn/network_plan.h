// NetworkPlan: the shape walk of a binary network, made once and used twice.
//
// Every layer's shape and bit widths are decided here, without LibTorch: the
// cost model (ACE, CPU64) reads the plan, and the LibTorch model and the
// bit-packed evaluator are built from the same plan, so the reported cost is
// the cost of the network that trains. Plain values; thread-safe to share.
#ifndef LOUPE_WORKERS_BNN_NETWORK_PLAN_H_
#define LOUPE_WORKERS_BNN_NETWORK_PLAN_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace loupe::bnn {

// The cost class of a layer; ACE is reported per class.
enum class LayerType { kStemConv, kBinaryConv, kSeConv, kDense, kFloatConv };
const char* LayerTypeName(LayerType type);

// One convolution (or, with kernel 1 on a 1×1 map, a dense layer).
struct ConvPlan {
  std::string name;
  LayerType type = LayerType::kBinaryConv;
  int64_t in_channels = 0, out_channels = 0;
  int64_t kernel = 1, stride = 1, groups = 1;
  bool same_padding = true;  // SAME (pad kernel/2); false: VALID
  int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int w_bits = 1, a_bits = 1;  // 32: floating point

  // Multiply-accumulates of one image.
  int64_t Macs() const;
  // ACE: MACs × w_bits × a_bits (PokeBNN's size_stats).
  int64_t Ace() const;
};

// A PokeConv (binary conv + local residual + DPReLU + SE gate) or, in a
// ReActNet block, a conv with a learnable input shift and no SE.
struct PokeConvPlan {
  ConvPlan conv;
  bool has_se = true;
  ConvPlan se_reduce, se_expand;  // valid when has_se
  bool zero_init_bn = false;      // BN scale starts at 0 (third conv of a bottleneck)
  bool block_residual = false;    // adds the block input (tiled) before DPReLU
  bool learnable_shift = false;   // ReActNet's RSign threshold
};

struct BlockPlan {
  std::vector<PokeConvPlan> convs;
};

struct NetworkPlan {
  std::string architecture;
  bool binary = true;  // false: the float network of the same shape
  int64_t input_channels = 0, input_size = 0, num_classes = 0;
  std::vector<ConvPlan> stem;  // 4×4/s4 (or 2×2/s2) conv, then grouped 3×3
  std::vector<BlockPlan> blocks;
  ConvPlan dense;  // after the global mean: kernel 1 on a 1×1 map

  // Every layer in execution order (SE convs after their conv).
  std::vector<const ConvPlan*> Layers() const;
};

struct PlanOptions {
  std::string architecture = "pokebnn";
  double width = 1.0;
  int64_t input_size = 224;
  int64_t input_channels = 3;
  int64_t num_classes = 1000;
};

// "pokebnn": the ResNet-50 stage plan (3×64, 4×128, 6×256, 3×512
// bottlenecks, widths × width). "pokebnn_small": the same blocks, two stages
// of two blocks (16, 32) for 28×28 inputs. "reactnet_small": ReActNet-style
// basic blocks of the same widths. "float", "float_small": pokebnn and
// pokebnn_small with floating-point convolutions. INVALID_ARGUMENT names the
// field when the input is too small for the network or a width rounds to 0.
absl::StatusOr<NetworkPlan> MakePlan(const PlanOptions& options);
const std::vector<std::string>& Architectures();

struct CostReport {
  std::map<std::string, int64_t> ace_by_type;  // LayerTypeName -> ACE
  int64_t conv_ace = 0;   // stem + binary + SE (+ float) convolutions
  int64_t dense_ace = 0;
  int64_t total_ace = 0;  // conv_ace + dense_ace
  // CPU64: 1-bit MACs cost 1/64 of an operation (64 per word on a 64-bit
  // CPU), every other MAC one operation (Bi-Real/ReActNet "OPs").
  double cpu64 = 0;
  int64_t binary_macs = 0, other_macs = 0;
  int64_t parameters = 0;
};
CostReport ComputeCost(const NetworkPlan& plan);

}  // namespace loupe::bnn

#endif  // LOUPE_WORKERS_BNN_NETWORK_PLAN_H_
