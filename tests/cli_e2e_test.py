#!/usr/bin/python3
"""The loupe CLI against a real server, as a user runs it: commands, --json
output and the documented exit codes."""
import hashlib
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from e2e_common import Server  # noqa: E402

SERVER_BIN = os.environ["LOUPE_SERVER_BIN"]
CLI_BIN = os.environ["LOUPE_CLI_BIN"]


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(SERVER_BIN)
        cls.alice = cls.server.token("alice")
        cls.bob = cls.server.token("bob")
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def loupe(self, *args, token=None, server=None, check=None):
        env = dict(os.environ)
        env["LOUPE_SERVER"] = server or self.server.addr
        env["LOUPE_TOKEN"] = self.alice if token is None else token
        p = subprocess.run([CLI_BIN, *args], capture_output=True, text=True, env=env, timeout=120)
        if check is not None:
            self.assertEqual(p.returncode, check, f"loupe {' '.join(args)}\n{p.stdout}\n{p.stderr}")
        return p

    def submit_json(self, *args):
        p = self.loupe("--json", "submit", *args, check=0)
        return json.loads(p.stdout.strip().splitlines()[0])

    def test_submit_watch_result_download(self):
        job = self.submit_json("noop", "--param", "steps=5", "--param", "sleep_ms=20",
                               "--param", "artifact_bytes=300000", "--label", "exp=cli")
        self.assertEqual(job["kind"], "noop")
        self.assertRegex(job["id"], "^[0-9a-f]{12}$")
        w = self.loupe("watch", job["id"], check=0)
        self.assertIn("SUCCEEDED", w.stdout)
        res = json.loads(self.loupe("--json", "result", job["id"], check=0).stdout)
        self.assertEqual(res["state"], "SUCCEEDED")
        self.assertEqual(res["metrics"]["steps"], 5)
        out = os.path.join(self.server.dir, "noop.bin")
        self.loupe("download", job["id"], "noop.bin", "-o", out, check=0)
        data = open(out, "rb").read()
        self.assertEqual(len(data), 300000)
        self.assertEqual(data, bytes(i % 251 for i in range(300000)))
        self.assertEqual(hashlib.sha256(data).hexdigest(), res["artifacts"][0]["sha256"])
        listed = self.loupe("list", "--kind", "noop", check=0).stdout
        self.assertIn(job["id"], listed)
        art = self.loupe("artifacts", job["id"], check=0).stdout
        self.assertIn("noop.bin", art)

    def test_exit_codes(self):
        # 2: usage, including a misspelled parameter (refused before submitting)
        p = self.loupe("submit", "noop", "--param", "stpes=3", check=2)
        self.assertIn("did you mean 'steps'", p.stderr)
        self.loupe("submit", "nooop", check=2)
        # 1: the watched job failed
        failing = self.submit_json("noop", "--param", "fail_with=broken on purpose")
        p = self.loupe("watch", failing["id"], check=1)
        self.assertIn("broken on purpose", p.stdout + p.stderr)
        # 3: cancelled
        long = self.submit_json("noop", "--param", "steps=100000", "--param", "sleep_ms=5")
        self.loupe("cancel", long["id"], check=0)
        self.loupe("watch", long["id"], check=3)
        # 4: unreachable server
        self.loupe("list", server="127.0.0.1:1", check=4)
        # 5: bad token, and another user's job
        self.loupe("list", token="loupe_wrong", check=5)
        self.loupe("get", failing["id"], token=self.bob, check=5)
        # 6: not found
        self.loupe("get", "0123456789ab", check=6)
        # 7: the server refused a value
        p = self.loupe("submit", "sae.train", "--param", "k=5000", check=7)
        self.assertIn("'k'", p.stderr)

    def test_submit_watch_flag_and_idempotency(self):
        p = self.loupe("submit", "noop", "--param", "steps=2", "--watch", check=0)
        self.assertIn("SUCCEEDED", p.stdout)
        a = self.submit_json("noop", "--idempotency-key", "same-key")
        b = self.submit_json("noop", "--idempotency-key", "same-key")
        self.assertEqual(a["id"], b["id"])

    def test_upload_then_use(self):
        path = os.path.join(self.server.dir, "table.csv")
        with open(path, "w") as f:
            f.write("a,b\n" + "".join(f"{i},{i * i}\n" for i in range(5000)))
        ds = json.loads(self.loupe("--json", "upload", path, check=0).stdout)
        again = json.loads(self.loupe("--json", "upload", path, check=0).stdout)
        self.assertEqual(ds["id"], again["id"])
        self.assertTrue(again["deduplicated"])
        job = self.submit_json("noop", "--param", f"input=dataset:{ds['id']}")
        self.loupe("watch", job["id"], check=0)
        res = json.loads(self.loupe("--json", "result", job["id"], check=0).stdout)
        self.assertEqual(res["metrics"]["input_bytes"], os.path.getsize(path))

    def test_kinds_describe_parameters(self):
        out = self.loupe("kinds", "sae.train", check=0).stdout
        for name in ("d_model", "n_features", "d_sae", "k", "steps", "batch_size", "lr", "seed"):
            self.assertIn(name, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
