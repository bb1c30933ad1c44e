// Process-wide settings a serving loupe-server wants, applied once at start
// by main() and by the benchmarks that stand in for it (so they measure the
// process users run). Call before any threads start; not thread-safe.
#ifndef LOUPE_SERVER_PROCESS_TUNING_H_
#define LOUPE_SERVER_PROCESS_TUNING_H_

namespace loupe {

// - glibc keeps freed large blocks instead of unmapping and trimming them:
//   jobs allocate and free the same large buffers every step (16 MB of
//   logits for a tiny LM batch), and returning each to the kernel made
//   lm.train 2.7x slower.
// - absl::Mutex deadlock detection off: Debian builds Abseil without NDEBUG,
//   so every Mutex (gRPC's included) updates a global lock-order graph under
//   a global lock on each acquire; that is a debugging aid, not something a
//   server pays for on every RPC.
void TuneProcessForServing();

}  // namespace loupe

#endif  // LOUPE_SERVER_PROCESS_TUNING_H_
