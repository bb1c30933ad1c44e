// Exit codes of the `loupe` command-line client.
//
// Scripts depend on these numbers: never renumber, only add. docs/cli.md
// carries the same table. Every grpc::Status and final JobState is mapped to
// an exit code here and nowhere else.
#ifndef LOUPE_CLIENT_EXIT_CODES_H_
#define LOUPE_CLIENT_EXIT_CODES_H_

#include <grpcpp/support/status.h>

#include "loupe/v1/jobs.pb.h"

namespace loupe::cli {

enum ExitCode : int {
  kExitOk = 0,               // success; for watch / submit --watch: job SUCCEEDED
  kExitJobFailed = 1,        // the watched job ended FAILED
  kExitUsage = 2,            // bad flags, parameters, kinds, durations, spec files
  kExitJobCancelled = 3,     // the watched job ended CANCELLED
  kExitUnreachable = 4,      // UNAVAILABLE / DEADLINE_EXCEEDED: server not reachable
  kExitAuth = 5,             // UNAUTHENTICATED / PERMISSION_DENIED
  kExitNotFound = 6,         // NOT_FOUND (job, artifact, dataset)
  kExitInvalidArgument = 7,  // INVALID_ARGUMENT / FAILED_PRECONDITION / OUT_OF_RANGE /
                             // ALREADY_EXISTS: the server refused the request
  kExitServerError = 8,      // any other server error (INTERNAL, UNKNOWN, ...)
  kExitLocalIo = 9,          // local file problems, checksum mismatch
};

// The exit code for a failed RPC. kExitOk for OK.
int ExitCodeForStatus(grpc::StatusCode code);

// The exit code for a job's final state: SUCCEEDED 0, FAILED 1, CANCELLED 3.
// A non-final state (the job is still queued or running) gives
// kExitServerError: a watch must not end before the job does.
int ExitCodeForJobState(loupe::v1::JobState state);

}  // namespace loupe::cli

#endif  // LOUPE_CLIENT_EXIT_CODES_H_
