#include "workers/torch_threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

namespace loupe {

void InitTorchThreads(int threads) {
  // LibTorch's OpenMP backend keeps the thread count per calling thread, so
  // each worker sets its own; inter-op work stays on the worker itself.
  at::init_num_threads();
  at::set_num_threads(threads);
  // Debian's LibTorch runs matrix products in OpenBLAS's own pool, which
  // at::set_num_threads does not reach; without this every job would start
  // one busy-waiting BLAS thread per core.
  using SetBlasThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetBlasThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(threads);
  }
}

}  // namespace loupe
