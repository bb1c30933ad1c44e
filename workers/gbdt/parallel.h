// ParallelFor: splits [0, n) into contiguous chunks run on up to `threads`
// std::threads (the calling thread takes the first chunk). fn(begin, end)
// must be safe to run concurrently on disjoint ranges.
#ifndef LOUPE_WORKERS_GBDT_PARALLEL_H_
#define LOUPE_WORKERS_GBDT_PARALLEL_H_

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace loupe::gbdt {

template <typename Fn>
void ParallelFor(int64_t n, int threads, Fn&& fn) {
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(threads, n));
  if (workers == 1) {
    if (n > 0) fn(int64_t{0}, n);
    return;
  }
  const int64_t chunk = (n + workers - 1) / workers;
  std::vector<std::thread> pool;
  for (int64_t w = 1; w < workers; ++w) {
    const int64_t b = w * chunk, e = std::min(n, b + chunk);
    if (b < e) pool.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(int64_t{0}, std::min(n, chunk));
  for (auto& t : pool) t.join();
}

}  // namespace loupe::gbdt

#endif  // LOUPE_WORKERS_GBDT_PARALLEL_H_
