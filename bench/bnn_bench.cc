// bnn_bench: bit-packed XNOR-popcount binary convolution against LibTorch's
// float convolution of the same shape, same thread count, same process.
//
//   build-bnn/bench/bnn_bench [--reps 50]
//
// For each shape and thread count it prints the median time of
//   float      torch::conv2d on float32 input and weights (the baseline),
//   fakequant  binarize activations and weights, then torch::conv2d (what
//              training runs),
//   packed     BinaryConv2d: pack the activations' signs into uint64 words,
//              im2col on bits, XNOR-popcount against pre-packed weights,
// and the ratio float / packed of the minima (medians in brackets). Weights are packed once, outside the timing,
// as a deployed network would hold them; activation packing is timed.
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "workers/bnn/packed_conv.h"
#include "workers/bnn/quantizers.h"

namespace {

struct Timing {
  double min_ms, median_ms;
};

// Minimum and median over `reps` runs. On a shared machine the minimum is the
// figure to compare (other processes only ever add time); the median shows
// how noisy the run was.
Timing TimeMs(int reps, const std::function<void()>& fn) {
  for (int i = 0; i < 3; ++i) fn();  // warm-up
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms.front(), ms[ms.size() / 2]};
}

struct Shape {
  int64_t batch, channels, out, size, kernel;
};

}  // namespace

int main(int argc, char** argv) {
  int reps = 50;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0) reps = std::atoi(argv[i + 1]);
  }
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  std::printf("popcount kernel: %s\n", loupe::bnn::PopcountKernelName(loupe::bnn::BestPopcountKernel()));
  std::printf("%-24s %7s %18s %18s %18s %8s\n", "shape (N,C->O,HxW,k)", "threads", "float ms min [med]",
              "fakequant ms", "packed ms", "speedup");
  for (const Shape& s : {Shape{1, 256, 256, 14, 3}, Shape{8, 256, 256, 14, 3}, Shape{1, 512, 512, 7, 3},
                         Shape{1, 128, 128, 28, 3}, Shape{1, 256, 1024, 14, 1}}) {
    const torch::Tensor x = torch::randn({s.batch, s.channels, s.size, s.size});
    const torch::Tensor w = torch::randn({s.out, s.channels, s.kernel, s.kernel});
    const int64_t pad = s.kernel / 2;
    const loupe::bnn::PackedWeights pw = loupe::bnn::PackWeights(w);
    // The integer result must equal the float conv of the signs.
    {
      const torch::Tensor sx = torch::where(x >= 0, 1.0, -1.0), sw = torch::where(w >= 0, 1.0, -1.0);
      const torch::Tensor want = torch::conv2d(sx, sw, {}, 1, pad).round().to(torch::kInt);
      if (!torch::equal(want, loupe::bnn::BinaryConv2d(x, pw, 1, pad))) {
        std::fprintf(stderr, "packed result differs from the float conv of the signs\n");
        return 1;
      }
    }
    for (int threads : {1, 2}) {
      at::set_num_threads(threads);
      const Timing f = TimeMs(reps, [&] { torch::conv2d(x, w, {}, 1, pad); });
      const Timing q = TimeMs(reps, [&] {
        torch::conv2d(loupe::bnn::BinarizeActivation(x, 3.0), loupe::bnn::BinarizeWeight(w), {}, 1, pad);
      });
      const Timing p = TimeMs(reps, [&] { loupe::bnn::BinaryConv2d(x, pw, 1, pad); });
      char name[64];
      std::snprintf(name, sizeof(name), "%lld,%lld->%lld,%lldx%lld,%lld", (long long)s.batch, (long long)s.channels,
                    (long long)s.out, (long long)s.size, (long long)s.size, (long long)s.kernel);
      std::printf("%-24s %7d %8.3f [%7.3f] %8.3f [%7.3f] %8.3f [%7.3f] %7.1fx\n", name, threads, f.min_ms,
                  f.median_ms, q.min_ms, q.median_ms, p.min_ms, p.median_ms, f.min_ms / p.min_ms);
    }
  }
  return 0;
}
