"""Starts a real loupe-server in a temporary data dir, for end-to-end tests
written in Python (Debian's /usr/bin/python3; standard library, plus grpcio
for the client test)."""
import os
import shutil
import socket
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, server_bin, extra_args=()):
        self.bin = server_bin
        self.dir = tempfile.mkdtemp(prefix="loupe-e2e-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.extra = list(extra_args)
        self.proc = None

    def token(self, user, admin=False):
        args = [self.bin, "token", "create", user, "--data-dir", self.data]
        if admin:
            args.append("--admin")
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
        return out.strip().splitlines()[-1]

    def start(self):
        self.log = open(os.path.join(self.dir, "server.log"), "a")
        self.proc = subprocess.Popen(
            [self.bin, "--listen", self.addr, "--data-dir", self.data, "--workers", "1",
             "--threads-per-job", "1"] + self.extra,
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("loupe-server exited: " + open(self.log.name).read())
                time.sleep(0.05)
        raise RuntimeError("loupe-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def close(self):
        self.stop()
        if self.proc:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
