#!/usr/bin/python3
"""A Python program using the gRPC API directly (Debian's python3-grpcio),
with stubs generated from proto/ by Debian's protoc, as docs/api.md shows."""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from e2e_common import Server  # noqa: E402

SERVER_BIN = os.environ["LOUPE_SERVER_BIN"]
PROTO_DIR = os.environ["LOUPE_PROTO_DIR"]

gen = tempfile.mkdtemp(prefix="loupe-py-")
protos = [os.path.join(PROTO_DIR, "loupe", "v1", p) for p in ("kinds.proto", "jobs.proto", "service.proto")]
subprocess.run(["protoc", "-I" + PROTO_DIR, "--python_out=" + gen, "--grpc_out=" + gen,
                "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", *protos], check=True)
sys.path.insert(0, gen)

import grpc  # noqa: E402
from loupe.v1 import jobs_pb2, kinds_pb2, service_pb2, service_pb2_grpc  # noqa: E402


class PythonClientTest(unittest.TestCase):
    def test_submit_watch_result(self):
        server = Server(SERVER_BIN)
        try:
            token = server.token("alice")
            server.start()
            stub = service_pb2_grpc.JobServiceStub(grpc.insecure_channel(server.addr))
            md = [("authorization", f"Bearer {token}")]
            spec = jobs_pb2.JobSpec(noop=kinds_pb2.NoopParams(steps=3, sleep_ms=10))
            job = stub.SubmitJob(service_pb2.SubmitJobRequest(spec=spec), metadata=md)
            events = list(stub.WatchJob(service_pb2.WatchJobRequest(id=job.id), metadata=md))
            self.assertEqual([e.seq for e in events], list(range(1, len(events) + 1)))
            self.assertEqual(events[-1].state.state, jobs_pb2.SUCCEEDED)
            result = stub.GetResult(service_pb2.GetResultRequest(id=job.id), metadata=md)
            self.assertEqual(result.metrics["steps"], 3)
            with self.assertRaises(grpc.RpcError) as err:
                stub.GetJob(service_pb2.GetJobRequest(id=job.id))
            self.assertEqual(err.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            kinds = stub.ListJobKinds(service_pb2.ListJobKindsRequest(), metadata=md)
            self.assertIn("sae.train", [k.name for k in kinds.kinds])
        finally:
            server.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
