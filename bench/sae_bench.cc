// sae_bench: TopK SAE training tokens/s of workers/sae's SaeTrainer (sparse:
// the encoder's backward and the decoder touch only the k active latents per
// row) beside the same step written densely in python3-torch
// (bench/sae_bench_reference.py: z @ W_dec on a dense [batch, d_sae] code, as
// the common PyTorch SAE code does), run as a subprocess in the same run with
// the same threads and shapes; and how close the step comes to the
// machine's matmul rate, measured in the same process.
//
//   build/bin/sae_bench [--threads 2] [--steps 5] [--d-model 512] [--d-sae 8192]
//                       [--k 32] [--batch 4096] [--python /usr/bin/python3]
//
// Each side: warm-up steps, then the best of the timed steps on one fixed
// random batch (the machine is shared; other work only adds time);
// tokens/s = batch / best step. AuxK is part of both steps
// but inactive (dead window 10^9 tokens: no latent dies within a benchmark).
// "Dense fraction" = (FLOPs of the encoder matmul, 2·batch·d_model·d_sae) /
// step time, over torch::mm's rate on [batch, d_model] × [d_model, d_sae]:
// the share of the step's time that is the one dense product it cannot
// avoid (torch::mm timed into a preallocated output). Run it with the
// server's allocator settings (GLIBC_TUNABLES, see docs/benchmarks.md; the
// Python child inherits them). docs/benchmarks.md ("sae.train") records the
// figures.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "workers/sae/sae_trainer.h"

#ifndef LOUPE_SAE_BENCH_REFERENCE
#define LOUPE_SAE_BENCH_REFERENCE "bench/sae_bench_reference.py"
#endif

namespace loupe::bench {
namespace {

void SetThreads(int n) {
  at::set_num_threads(n);
  // Debian's LibTorch multiplies in OpenBLAS, whose pool follows its own
  // setting; the Python side sets both the same way.
  using SetBlasThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetBlasThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
}

double Seconds(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The least-disturbed figure: the machine is shared, so other work only
// ever adds time.
double Best(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

int Main(int argc, char** argv) {
  CLI::App app{"Loupe TopK SAE training benchmark (against a dense python3-torch step)"};
  int threads = 2, steps = 5, warmup = 1;
  int64_t d_model = 512, d_sae = 8192, k = 32, batch = 4096;
  std::string python = "/usr/bin/python3", script = LOUPE_SAE_BENCH_REFERENCE;
  app.add_option("--threads", threads)->capture_default_str();
  app.add_option("--steps", steps, "Timed steps per side")->capture_default_str();
  app.add_option("--warmup", warmup)->capture_default_str();
  app.add_option("--d-model", d_model)->capture_default_str();
  app.add_option("--d-sae", d_sae)->capture_default_str();
  app.add_option("--k", k)->capture_default_str();
  app.add_option("--batch", batch)->capture_default_str();
  app.add_option("--python", python, "Python with torch (Debian's)")->capture_default_str();
  app.add_option("--script", script)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  SetThreads(threads);
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  std::printf("GLIBC_TUNABLES=%s\n", tunables ? tunables : "(unset)");
  std::printf("sae_bench: d_model %ld, d_sae %ld, k %ld, batch %ld, %d threads, %d timed steps per side\n",
              (long)d_model, (long)d_sae, (long)k, (long)batch, threads, steps);

  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({batch, d_model});
  const double encoder_flops = 2.0 * batch * d_model * d_sae;

  // The machine's matmul rate at the encoder's shape.
  double mm_gflops = 0;
  {
    const torch::Tensor a = torch::randn({batch, d_model}), b = torch::randn({d_model, d_sae});
    torch::Tensor c = torch::mm(a, b);  // into one buffer: the product alone, no fresh pages
    std::vector<double> t;
    for (int i = 0; i < 10; ++i) t.push_back(Seconds([&] { torch::mm_out(c, a, b); }));
    mm_gflops = encoder_flops / Best(t) / 1e9;
  }
  std::printf("torch::mm [%ld, %ld] x [%ld, %ld]: %.1f GFLOP/s\n", (long)batch, (long)d_model, (long)d_model,
              (long)d_sae, mm_gflops);
  std::fflush(stdout);

  // Loupe: SaeTrainer, architecture topk.
  double loupe_step = 0;
  {
    sae::SaeTrainerOptions o;
    o.architecture = sae::SaeArchitecture::kTopK;
    o.d_in = d_model;
    o.d_sae = d_sae;
    o.k = k;
    o.lr = 1e-4;
    o.warmup_steps = 0;
    o.total_steps = 1000000;
    o.dead_window_tokens = 1000000000;
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
    sae::SaeTrainer trainer(o, torch::kCPU, gen);
    for (int i = 0; i < warmup; ++i) trainer.Step(x);
    std::vector<double> t;
    for (int i = 0; i < steps; ++i) t.push_back(Seconds([&] { trainer.Step(x); }));
    loupe_step = Best(t);
  }
  const double loupe_tps = static_cast<double>(batch) / loupe_step;
  std::printf("Loupe SaeTrainer (sparse):  %.3f s/step, %.0f tokens/s, dense fraction %.0f%%\n", loupe_step,
              loupe_tps, 100.0 * encoder_flops / loupe_step / 1e9 / mm_gflops);
  std::fflush(stdout);

  // python3-torch, dense.
  const std::string command = absl::StrFormat(
      "OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d %s %s --threads %d --d-model %d --d-sae %d --k %d --batch %d "
      "--warmup %d --steps %d",
      threads, threads, python, script, threads, d_model, d_sae, k, batch, warmup, steps);
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    std::fprintf(stderr, "cannot run %s\n", command.c_str());
    return 1;
  }
  nlohmann::json py;
  char line[4096];
  while (std::fgets(line, sizeof line, pipe) != nullptr) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      std::fprintf(stderr, "python: %s", line);
    } else {
      py = j;
    }
  }
  if (int rc = ::pclose(pipe); rc != 0 || py.is_null()) {
    std::fprintf(stderr, "%s failed (status %d)\n", script.c_str(), rc);
    return 1;
  }
  const double py_tps = py["train_tokens_per_s"].get<double>();
  const double py_step = py["step_seconds"].get<double>();
  std::printf("python3-torch %s (dense), %d threads: %.3f s/step, %.0f tokens/s, dense fraction %.0f%% "
              "(its torch.mm: %.1f GFLOP/s)\n",
              py["torch"].get<std::string>().c_str(), py["threads"].get<int>(), py_step, py_tps,
              100.0 * encoder_flops / py_step / 1e9 / mm_gflops, py["mm_gflops"].get<double>());
  std::printf("\n| threads | Loupe tokens/s | python dense tokens/s | ratio | Loupe dense fraction | mm GFLOP/s |\n");
  std::printf("|---|---|---|---|---|---|\n");
  std::printf("| %d | %.0f | %.0f | %.2fx | %.0f%% | %.1f |\n", threads, loupe_tps, py_tps, loupe_tps / py_tps,
              100.0 * encoder_flops / loupe_step / 1e9 / mm_gflops, mm_gflops);
  return 0;
}

}  // namespace
}  // namespace loupe::bench

int main(int argc, char** argv) { return loupe::bench::Main(argc, argv); }
