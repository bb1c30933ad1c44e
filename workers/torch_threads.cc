#include "workers/torch_threads.h"

#include <ATen/Parallel.h>

namespace loupe {

void InitTorchThreads(int threads) {
  // LibTorch's OpenMP backend keeps the thread count per calling thread, so
  // each worker sets its own; inter-op work stays on the worker itself.
  at::init_num_threads();
  at::set_num_threads(threads);
}

}  // namespace loupe
