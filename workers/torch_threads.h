// Sets LibTorch's intra-op thread count for the calling worker thread.
#ifndef LOUPE_WORKERS_TORCH_THREADS_H_
#define LOUPE_WORKERS_TORCH_THREADS_H_

namespace loupe {

void InitTorchThreads(int threads);

}  // namespace loupe

#endif  // LOUPE_WORKERS_TORCH_THREADS_H_
