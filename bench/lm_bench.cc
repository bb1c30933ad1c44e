// lm_bench: forward and training tokens/s of Loupe's language models
// (workers/lm/model, with lm.train's optimizer step) beside the same models
// in plain python3-torch (bench/lm_bench_reference.py), run as a subprocess
// in the same run with the same thread settings, shapes and timing.
//
//   build/bin/lm_bench [--threads 2] [--rounds 2] [--quick]
//                      [--cases gpt2-small,tiny-gpt2,tiny-llama] [--python /usr/bin/python3]
//
// Cases (random weights): GPT-2 small (12 layers, d 768, 12 heads, vocab
// 50257) at context 128, batch 4; lm.train's default model (gpt2, 2 layers,
// d 128, 4 heads, vocab 2048, context 128, batch 16) and its llama twin.
// Each figure is batch × context over the median time of a call, after
// warm-up calls; rounds alternate the sides and each keeps its best. A ratio
// > 1 means Loupe is faster. Environment settings (GLIBC_TUNABLES,
// OMP_WAIT_POLICY) reach both sides, since the child inherits them. docs/benchmarks.md
// ("Language models") records the figures.
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "workers/lm/jobs/optim.h"
#include "workers/lm/model/hf_io.h"
#include "workers/lm/model/loss.h"

#ifndef LOUPE_LM_BENCH_REFERENCE
#define LOUPE_LM_BENCH_REFERENCE "bench/lm_bench_reference.py"
#endif

namespace loupe::bench {
namespace {

struct Case {
  std::string name;
  std::string arch;  // gpt2 | llama
  int64_t layers, d_model, heads, vocab, ctx, batch, d_mlp;
  int warmup, iters;
  double min_seconds;

  nlohmann::json ToJson() const {
    return {{"name", name},   {"arch", arch},     {"layers", layers}, {"d_model", d_model},
            {"heads", heads}, {"vocab", vocab},   {"ctx", ctx},       {"batch", batch},
            {"d_mlp", d_mlp}, {"warmup", warmup}, {"iters", iters},   {"min_seconds", min_seconds}};
  }
  lm::ModelConfig Config() const {
    return arch == "gpt2" ? lm::MakeGpt2Config(vocab, d_model, layers, heads, ctx)
                          : lm::MakeLlamaConfig(vocab, d_model, layers, heads, heads, d_mlp, ctx);
  }
};

std::vector<Case> AllCases(bool quick) {
  const int big_iters = quick ? 2 : 4, small_iters = quick ? 5 : 20;
  const double big_s = quick ? 0 : 5, small_s = quick ? 0 : 3;
  return {
      {"gpt2-small", "gpt2", 12, 768, 12, 50257, 128, 4, 4 * 768, 1, big_iters, big_s},
      // lm.train's defaults; the llama twin's MLP width is lm.train's (8/3·d
      // rounded up to 32).
      {"tiny-gpt2", "gpt2", 2, 128, 4, 2048, 128, 16, 4 * 128, 3, small_iters, small_s},
      {"tiny-llama", "llama", 2, 128, 4, 2048, 128, 16, 352, 3, small_iters, small_s},
  };
}

void SetThreads(int n) {
  at::set_num_threads(n);
  // Debian's LibTorch multiplies in OpenBLAS (pthreads), whose pool follows
  // its own setting; the Python side sets both the same way.
  using SetBlasThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetBlasThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
}

double MedianSeconds(const std::function<void()>& fn, int warmup, int iters, double min_seconds) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> times;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  while (static_cast<int>(times.size()) < iters ||
         (elapsed() < min_seconds && static_cast<int>(times.size()) < 10 * iters)) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  return n % 2 == 1 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
}

struct Figures {
  double forward = 0, train = 0;  // tokens/s
};

Figures RunLoupe(const Case& c) {
  lm::CreateOptions co;
  co.seed = 0;
  absl::StatusOr<std::shared_ptr<lm::CausalLM>> created = lm::CreateModel(c.Config(), co);
  if (!created.ok()) {
    std::fprintf(stderr, "%s: %s\n", c.name.c_str(), created.status().ToString().c_str());
    std::exit(1);
  }
  lm::CausalLM& model = **created;
  torch::manual_seed(0);
  torch::Tensor ids = torch::randint(c.vocab, {c.batch, c.ctx}, torch::kLong);
  const double tokens = static_cast<double>(c.batch * c.ctx);
  Figures f;

  model.eval();
  f.forward = tokens / MedianSeconds(
                           [&] {
                             torch::NoGradGuard no_grad;
                             model.Forward(ids);
                           },
                           c.warmup, c.iters, c.min_seconds);

  // One lm.train step: forward, next-token loss, backward, clip, AdamW.
  model.train();
  lm::LmOptimizerOptions oo;
  oo.lr = 1e-4;
  oo.total_steps = 1 << 30;
  lm::LmOptimizer optimizer(model, oo);
  int64_t step = 0;
  f.train = tokens / MedianSeconds(
                         [&] {
                           torch::Tensor loss = lm::NextTokenLoss(model.Forward(ids), ids);
                           loss.backward();
                           optimizer.Step(++step);
                           (void)loss.item<double>();
                         },
                         c.warmup, c.iters, c.min_seconds);
  return f;
}

// Runs the reference script on `cases`; name -> figures.
std::map<std::string, Figures> RunPython(const std::string& python, const std::string& script, int threads,
                                         const std::vector<Case>& cases) {
  nlohmann::json config = nlohmann::json::array();
  for (const Case& c : cases) config.push_back(c.ToJson());
  // Single quotes around the JSON: it holds none.
  const std::string command =
      absl::StrFormat("OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d %s %s --threads %d --config '%s'", threads, threads,
                      python, script, threads, config.dump());
  std::map<std::string, Figures> out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    std::fprintf(stderr, "cannot run %s\n", command.c_str());
    return out;
  }
  char line[4096];
  while (std::fgets(line, sizeof line, pipe) != nullptr) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      std::fprintf(stderr, "python: %s", line);
    } else if (j.contains("torch")) {
      static bool shown = false;
      if (!shown) {
        std::printf("python3-torch %s, %d threads\n", j["torch"].get<std::string>().c_str(), j["threads"].get<int>());
        shown = true;
      }
    } else {
      out[j["name"].get<std::string>()] = {j["forward_tokens_per_s"].get<double>(),
                                           j["train_tokens_per_s"].get<double>()};
    }
  }
  if (int rc = ::pclose(pipe); rc != 0) std::fprintf(stderr, "%s exited with status %d\n", script.c_str(), rc);
  return out;
}

int Main(int argc, char** argv) {
  CLI::App app{"Loupe language-model benchmark (against python3-torch)"};
  int threads = 2;
  std::string cases_arg = "gpt2-small,tiny-gpt2,tiny-llama";
  std::string python = "/usr/bin/python3";
  std::string script = LOUPE_LM_BENCH_REFERENCE;
  bool quick = false;
  int rounds = 2;
  app.add_option("--threads", threads, "Intra-op threads for both sides (LibTorch and OpenBLAS)")
      ->capture_default_str();
  app.add_option("--cases", cases_arg, "Comma-separated cases")->capture_default_str();
  app.add_option("--python", python, "Python with torch (Debian's)")->capture_default_str();
  app.add_option("--script", script, "The reference script")->capture_default_str();
  app.add_option("--rounds", rounds, "Rounds (each side keeps its best)")->capture_default_str();
  app.add_flag("--quick", quick, "Fewer iterations (a smoke test; figures are noisier)");
  CLI11_PARSE(app, argc, argv);

  std::vector<Case> cases;
  for (absl::string_view name : absl::StrSplit(cases_arg, ',', absl::SkipEmpty())) {
    bool found = false;
    for (const Case& c : AllCases(quick)) {
      if (c.name == name) {
        cases.push_back(c);
        found = true;
      }
    }
    if (!found) {
      std::fprintf(stderr, "unknown case '%s'\n", std::string(name).c_str());
      return 2;
    }
  }
  SetThreads(threads);
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  std::printf("LibTorch %s, %d threads; GLIBC_TUNABLES=%s, OMP_WAIT_POLICY=%s (inherited by the Python side)\n",
              TORCH_VERSION, at::get_num_threads(), tunables ? tunables : "(unset)",
              wait_policy ? wait_policy : "(unset)");

  // Rounds alternate the two sides, and each side keeps its best round: on a
  // shared machine a slow round means someone else had the cores.
  std::map<std::string, Figures> loupe, py;
  auto keep_best = [](Figures& best, const Figures& f) {
    best.forward = std::max(best.forward, f.forward);
    best.train = std::max(best.train, f.train);
  };
  for (int round = 1; round <= rounds; ++round) {
    for (const Case& c : cases) {
      Figures f = RunLoupe(c);
      keep_best(loupe[c.name], f);
      std::printf("round %d loupe  %-11s forward %9.0f tokens/s, train %9.0f tokens/s\n", round, c.name.c_str(),
                  f.forward, f.train);
      std::fflush(stdout);
    }
    for (const auto& [name, f] : RunPython(python, script, threads, cases)) {
      keep_best(py[name], f);
      std::printf("round %d python %-11s forward %9.0f tokens/s, train %9.0f tokens/s\n", round, name.c_str(),
                  f.forward, f.train);
    }
    std::fflush(stdout);
  }

  std::printf("\n| case | tokens/call | forward Loupe | forward Python | ratio | train Loupe | train Python | ratio |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  bool ok = true;
  for (const Case& c : cases) {
    const Figures& l = loupe[c.name];
    if (!py.count(c.name)) {
      ok = false;
      continue;
    }
    const Figures& p = py[c.name];
    std::printf("| %s | %lld | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f |\n", c.name.c_str(),
                static_cast<long long>(c.batch * c.ctx), l.forward, p.forward, l.forward / p.forward, l.train,
                p.train, l.train / p.train);
  }
  std::printf("\ntokens/s = batch × context / median seconds per call, best of %d rounds; ratio = Loupe / Python "
              "(> 1: Loupe faster)\n",
              rounds);
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace loupe::bench

int main(int argc, char** argv) { return loupe::bench::Main(argc, argv); }
