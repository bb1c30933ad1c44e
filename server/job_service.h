// JobServiceImpl: the gRPC frontend (callback API) of loupe.v1.JobService.
//
// It authenticates each call, translates between protos and the JobManager,
// and maps errors in one place (status_util). Handlers never block on a job:
// submits finish when the store's group commit calls back, watches are fed by
// the EventHub, and no LibTorch work ever runs on these threads.
#ifndef LOUPE_SERVER_JOB_SERVICE_H_
#define LOUPE_SERVER_JOB_SERVICE_H_

#include "loupe/v1/service.grpc.pb.h"
#include "server/auth.h"
#include "server/job_manager.h"

namespace loupe {

class JobServiceImpl final : public loupe::v1::JobService::CallbackService {
 public:
  JobServiceImpl(JobManager* manager, Authenticator* auth) : manager_(manager), auth_(auth) {}

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx,
                                      const loupe::v1::SubmitJobRequest* req,
                                      loupe::v1::Job* resp) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx,
                                   const loupe::v1::GetJobRequest* req,
                                   loupe::v1::Job* resp) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const loupe::v1::ListJobsRequest* req,
                                     loupe::v1::ListJobsResponse* resp) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx,
                                      const loupe::v1::CancelJobRequest* req,
                                      loupe::v1::Job* resp) override;
  grpc::ServerWriteReactor<loupe::v1::JobEvent>* WatchJob(
      grpc::CallbackServerContext* ctx, const loupe::v1::WatchJobRequest* req) override;
  grpc::ServerUnaryReactor* GetResult(grpc::CallbackServerContext* ctx,
                                      const loupe::v1::GetResultRequest* req,
                                      loupe::v1::JobResult* resp) override;
  grpc::ServerWriteReactor<loupe::v1::ArtifactChunk>* ReadArtifact(
      grpc::CallbackServerContext* ctx, const loupe::v1::ReadArtifactRequest* req) override;
  grpc::ServerReadReactor<loupe::v1::UploadDatasetRequest>* UploadDataset(
      grpc::CallbackServerContext* ctx, loupe::v1::Dataset* resp) override;
  grpc::ServerUnaryReactor* ListJobKinds(grpc::CallbackServerContext* ctx,
                                         const loupe::v1::ListJobKindsRequest* req,
                                         loupe::v1::ListJobKindsResponse* resp) override;

 private:
  absl::StatusOr<store::User> Authenticate(grpc::CallbackServerContext* ctx);

  JobManager* manager_;
  Authenticator* auth_;
};

}  // namespace loupe

#endif  // LOUPE_SERVER_JOB_SERVICE_H_
