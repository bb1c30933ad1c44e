// Real binary convolution: bit-packed ±1 weights and activations, XNOR-popcount.
//
// A value's bit is 1 when it is negative (x < 0, i.e. −1) and 0 when x ≥ 0
// (+1), matching BinarizeActivation/BinarizeWeight's sign convention. The
// channels of one pixel (or one kernel tap) are packed into ⌈C/64⌉ uint64
// words, so a ±1 dot product of K values is K − 2·popcount(a XOR w).
// Zero padding (which binary values cannot represent) is handled exactly: the
// padded taps are packed as +1 and their contribution, the per-tap sum of the
// weight signs, is subtracted again.
//
// The result is the integer Σ sign(a)·sign(w) over valid taps: multiplying it
// by (B/2)·(max|w_o|/2) gives the fake-quantized LibTorch convolution.
// Objects are immutable after packing; BinaryConv2d is thread-safe and uses
// LibTorch's intra-op thread pool (at::get_num_threads()).
#ifndef LOUPE_WORKERS_BNN_PACKED_CONV_H_
#define LOUPE_WORKERS_BNN_PACKED_CONV_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace loupe::bnn {

// Which popcount implementation runs; kAuto picks the fastest the CPU has.
enum class PopcountKernel { kAuto, kAvx512, kPopcnt, kPortable };
// The kernel kAuto resolves to on this CPU.
PopcountKernel BestPopcountKernel();
const char* PopcountKernelName(PopcountKernel kernel);

struct PackedWeights {
  int64_t out_channels = 0, in_channels = 0, kernel = 0;
  int64_t row_words = 0;  // words per output channel (kernel² taps, padded to 8)
  std::vector<uint64_t> bits;      // [out][row_words], taps in (ky, kx) order
  std::vector<int32_t> tap_sums;   // [out][kernel²]: Σ_c sign(w[o, c, ky, kx])
};

// `w`: [out, in, k, k] float (any device; copied to the CPU). Groups are not
// supported (PokeBNN's binary convs are dense).
PackedWeights PackWeights(const torch::Tensor& w);

// ±1 dot products of sign(x) with the packed weights: x is [N, C, H, W]
// float, padding is symmetric. Returns int32 [N, out, H_out, W_out] on the CPU.
torch::Tensor BinaryConv2d(const torch::Tensor& x, const PackedWeights& w, int64_t stride,
                           int64_t padding, PopcountKernel kernel = PopcountKernel::kAuto);

}  // namespace loupe::bnn

#endif  // LOUPE_WORKERS_BNN_PACKED_CONV_H_
