#include "workers/bnn/packed_conv.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>

namespace loupe::bnn {
namespace {

constexpr int64_t kWordBits = 64;
constexpr int64_t kRowAlign = 8;  // one 512-bit vector

int64_t WordsFor(int64_t channels) { return (channels + kWordBits - 1) / kWordBits; }
int64_t AlignUp(int64_t n, int64_t a) { return (n + a - 1) / a * a; }

// Sets bit c of words[c/64] for every negative value of a channel vector read
// with stride `step`.
void PackChannels(const float* v, int64_t channels, int64_t step, uint64_t* words) {
  for (int64_t c = 0; c < channels; ++c) {
    if (v[c * step] < 0) words[c / kWordBits] |= uint64_t{1} << (c % kWordBits);
  }
}

// Sign bits of `channels` contiguous floats: 16 at a time with AVX-512.
__attribute__((target("avx512f"))) void PackContiguousAvx512(const float* v, int64_t channels, uint64_t* words) {
  const __m512 zero = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 16 <= channels; c += 16) {
    const uint64_t neg = _mm512_cmp_ps_mask(_mm512_loadu_ps(v + c), zero, _CMP_LT_OQ);
    words[c / kWordBits] |= neg << (c % kWordBits);
  }
  for (; c < channels; ++c) {
    if (v[c] < 0) words[c / kWordBits] |= uint64_t{1} << (c % kWordBits);
  }
}

// popcount(a XOR w) summed over `n` words, three ways.
int64_t XorPopcountPortable(const uint64_t* a, const uint64_t* w, int64_t n) {
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint64_t v = a[i] ^ w[i];
    v = v - ((v >> 1) & 0x5555555555555555ull);
    v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
    v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0full;
    total += static_cast<int64_t>((v * 0x0101010101010101ull) >> 56);
  }
  return total;
}

__attribute__((target("popcnt"))) int64_t XorPopcountHw(const uint64_t* a, const uint64_t* w, int64_t n) {
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) total += __builtin_popcountll(a[i] ^ w[i]);
  return total;
}

// Sum of the eight 64-bit lanes (GCC 12's _mm512_reduce_add_epi64 trips
// -Wuninitialized inside its own header).
__attribute__((target("avx512f"))) int64_t SumLanes(__m512i v) {
  alignas(64) int64_t lanes[8];
  _mm512_store_si512(lanes, v);
  int64_t s = 0;
  for (int64_t x : lanes) s += x;
  return s;
}

// One pixel row against four output channels at once (the row is loaded once
// per four weight rows). n is a multiple of 8.
__attribute__((target("avx512f,avx512vpopcntdq"))) void XorPopcountAvx512x4(const uint64_t* a,
                                                                             const uint64_t* w0,
                                                                             int64_t stride, int64_t n,
                                                                             int64_t* out) {
  __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  for (int64_t i = 0; i < n; i += 8) {
    const __m512i x = _mm512_loadu_si512(a + i);
    acc0 = _mm512_add_epi64(acc0, _mm512_popcnt_epi64(_mm512_xor_si512(x, _mm512_loadu_si512(w0 + i))));
    acc1 = _mm512_add_epi64(acc1,
                            _mm512_popcnt_epi64(_mm512_xor_si512(x, _mm512_loadu_si512(w0 + stride + i))));
    acc2 = _mm512_add_epi64(
        acc2, _mm512_popcnt_epi64(_mm512_xor_si512(x, _mm512_loadu_si512(w0 + 2 * stride + i))));
    acc3 = _mm512_add_epi64(
        acc3, _mm512_popcnt_epi64(_mm512_xor_si512(x, _mm512_loadu_si512(w0 + 3 * stride + i))));
  }
  out[0] = SumLanes(acc0);
  out[1] = SumLanes(acc1);
  out[2] = SumLanes(acc2);
  out[3] = SumLanes(acc3);
}

__attribute__((target("avx512f,avx512vpopcntdq"))) int64_t XorPopcountAvx512(const uint64_t* a,
                                                                              const uint64_t* w, int64_t n) {
  __m512i acc = _mm512_setzero_si512();
  for (int64_t i = 0; i < n; i += 8) {
    acc = _mm512_add_epi64(
        acc, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(a + i), _mm512_loadu_si512(w + i))));
  }
  return SumLanes(acc);
}

}  // namespace

PopcountKernel BestPopcountKernel() {
  static const PopcountKernel best = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq")) {
      return PopcountKernel::kAvx512;
    }
    if (__builtin_cpu_supports("popcnt")) return PopcountKernel::kPopcnt;
    return PopcountKernel::kPortable;
  }();
  return best;
}

const char* PopcountKernelName(PopcountKernel kernel) {
  switch (kernel) {
    case PopcountKernel::kAuto: return "auto";
    case PopcountKernel::kAvx512: return "avx512-vpopcntdq";
    case PopcountKernel::kPopcnt: return "popcnt";
    case PopcountKernel::kPortable: return "portable";
  }
  return "unknown";
}

PackedWeights PackWeights(const torch::Tensor& weight) {
  const torch::Tensor w = weight.detach().to(torch::kCPU, torch::kFloat).contiguous();
  TORCH_CHECK(w.dim() == 4 && w.size(2) == w.size(3), "PackWeights: want [out, in, k, k]");
  PackedWeights p;
  p.out_channels = w.size(0);
  p.in_channels = w.size(1);
  p.kernel = w.size(2);
  const int64_t taps = p.kernel * p.kernel;
  const int64_t words = WordsFor(p.in_channels);
  p.row_words = AlignUp(taps * words, kRowAlign);
  p.bits.assign(p.out_channels * p.row_words, 0);
  p.tap_sums.assign(p.out_channels * taps, 0);
  const float* data = w.data_ptr<float>();
  for (int64_t o = 0; o < p.out_channels; ++o) {
    for (int64_t t = 0; t < taps; ++t) {
      const float* v = data + o * p.in_channels * taps + t;  // channel stride: taps
      PackChannels(v, p.in_channels, taps, &p.bits[o * p.row_words + t * words]);
      int32_t sum = 0;
      for (int64_t c = 0; c < p.in_channels; ++c) sum += v[c * taps] < 0 ? -1 : 1;
      p.tap_sums[o * taps + t] = sum;
    }
  }
  return p;
}

torch::Tensor BinaryConv2d(const torch::Tensor& input, const PackedWeights& w, int64_t stride, int64_t padding,
                           PopcountKernel kernel) {
  const torch::Tensor x = input.detach().to(torch::kCPU, torch::kFloat).contiguous();
  TORCH_CHECK(x.dim() == 4 && x.size(1) == w.in_channels, "BinaryConv2d: input channels ", x.size(1),
              " do not match the weights' ", w.in_channels);
  if (kernel == PopcountKernel::kAuto) kernel = BestPopcountKernel();
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t k = w.kernel, taps = k * k, words = WordsFor(c);
  const int64_t ho = (h + 2 * padding - k) / stride + 1, wo = (wd + 2 * padding - k) / stride + 1;
  const int64_t pixels = ho * wo, o_count = w.out_channels, row = w.row_words;
  torch::Tensor out = torch::empty({n, o_count, ho, wo}, torch::kInt);
  int32_t* out_data = out.data_ptr<int32_t>();

  // Pack every input pixel's channels once: [n][h][w][words], from a
  // channels-last copy so each pixel's channels are contiguous.
  const torch::Tensor nhwc = x.permute({0, 2, 3, 1}).contiguous();
  const float* nhwc_data = nhwc.data_ptr<float>();
  std::vector<uint64_t> packed(n * h * wd * words, 0);
  const bool avx512 = kernel == PopcountKernel::kAvx512;
  at::parallel_for(0, n * h * wd, 256, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (avx512) {
        PackContiguousAvx512(nhwc_data + i * c, c, &packed[i * words]);
      } else {
        PackChannels(nhwc_data + i * c, c, 1, &packed[i * words]);
      }
    }
  });

  // Each output pixel: gather its taps into one row (im2col on bits; taps
  // outside the image stay 0 = +1 and are corrected with tap_sums), then
  // XNOR-popcount the row against every output channel's row.
  at::parallel_for(0, n * pixels, 16, [&](int64_t begin, int64_t end) {
    std::vector<uint64_t> rowbuf(row);
    std::vector<int64_t> pops(o_count);
    std::vector<int64_t> invalid;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t img = i / pixels, oy = (i % pixels) / wo, ox = i % wo;
      std::fill(rowbuf.begin(), rowbuf.end(), 0);
      invalid.clear();
      for (int64_t ky = 0; ky < k; ++ky) {
        for (int64_t kx = 0; kx < k; ++kx) {
          const int64_t iy = oy * stride - padding + ky, ix = ox * stride - padding + kx;
          const int64_t t = ky * k + kx;
          if (iy < 0 || iy >= h || ix < 0 || ix >= wd) {
            invalid.push_back(t);
            continue;
          }
          const uint64_t* src = &packed[((img * h + iy) * wd + ix) * words];
          std::copy(src, src + words, &rowbuf[t * words]);
        }
      }
      int64_t o = 0;
      if (kernel == PopcountKernel::kAvx512) {
        for (; o + 4 <= o_count; o += 4) XorPopcountAvx512x4(rowbuf.data(), &w.bits[o * row], row, row, &pops[o]);
        for (; o < o_count; ++o) pops[o] = XorPopcountAvx512(rowbuf.data(), &w.bits[o * row], row);
      } else if (kernel == PopcountKernel::kPopcnt) {
        for (; o < o_count; ++o) pops[o] = XorPopcountHw(rowbuf.data(), &w.bits[o * row], row);
      } else {
        for (; o < o_count; ++o) pops[o] = XorPopcountPortable(rowbuf.data(), &w.bits[o * row], row);
      }
      for (o = 0; o < o_count; ++o) {
        int64_t dot = taps * c - 2 * pops[o];
        for (int64_t t : invalid) dot -= w.tap_sums[o * taps + t];
        out_data[(img * o_count + o) * pixels + oy * wo + ox] = static_cast<int32_t>(dot);
      }
    }
  });
  return out;
}

}  // namespace loupe::bnn
