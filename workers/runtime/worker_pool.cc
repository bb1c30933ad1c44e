#include "workers/runtime/worker_pool.h"

#include <pthread.h>

#include <exception>
#include <new>

#include "absl/strings/str_cat.h"

namespace loupe {

WorkerPool::WorkerPool(JobSource* source, Options options)
    : source_(source), options_(std::move(options)) {}

WorkerPool::~WorkerPool() { Join(); }

void WorkerPool::Start() {
  for (int i = 0; i < options_.workers; ++i) {
    threads_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "loupe-worker");
      if (options_.thread_init) options_.thread_init(options_.threads_per_job);
      while (std::optional<Assignment> a = source_->Next()) {
        RunOne(source_, std::move(*a));
      }
    });
  }
}

void WorkerPool::Join() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void WorkerPool::RunOne(JobSource* source, Assignment a) {
  std::unique_ptr<JobContext> ctx = source->MakeContext(a);
  absl::Status outcome;
  try {
    outcome = ctx->CheckContinue();
    if (outcome.ok()) outcome = a.kind->Run(*a.params, *ctx);
  } catch (const std::bad_alloc&) {
    outcome = absl::ResourceExhaustedError("out of memory");
  } catch (const std::exception& e) {
    outcome = absl::InternalError(absl::StrCat("job raised: ", e.what()));
  } catch (...) {
    outcome = absl::InternalError("job raised an unknown exception");
  }
  // A job that noticed cancellation or its deadline late still ends as such.
  if (!outcome.ok()) {
    absl::Status cont = ctx->CheckContinue();
    if (!cont.ok()) outcome = cont;
  }
  source->Finish(a, *ctx, std::move(outcome));
}

}  // namespace loupe
