#!/usr/bin/env bash
# From a fresh clone to a trained sparse autoencoder: installs the
# dependencies, builds, starts loupe-server on 127.0.0.1 with its data under
# ./var, creates a local token, submits a real sae.train job with the loupe
# CLI, shows its live progress and final metrics, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
port="${LOUPE_PORT:-7733}"
data="$root/var/data"

./deploy/install-deps.sh
./deploy/build.sh --target loupe-server loupe

mkdir -p "$data"
server_log="$root/var/loupe-server.log"
echo "== starting loupe-server on 127.0.0.1:$port (log: var/loupe-server.log)"
build/bin/loupe-server --listen "127.0.0.1:$port" --data-dir "$data" >>"$server_log" 2>&1 &
server_pid=$!
stop_server() {
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "== stopping loupe-server"
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
}
trap stop_server EXIT

echo "== creating a token for user '${USER:-loupe}'"
LOUPE_TOKEN="$(build/bin/loupe-server token create "${USER:-loupe}" --data-dir "$data" 2>/dev/null | tail -n 1)"
export LOUPE_TOKEN LOUPE_SERVER="127.0.0.1:$port"
echo "   (saved in var/token; use it with: export LOUPE_TOKEN=\$(cat var/token))"
umask 077
echo "$LOUPE_TOKEN" >"$root/var/token"

for _ in $(seq 1 100); do
  if build/bin/loupe kinds >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "loupe-server exited; see var/loupe-server.log" >&2
    tail -n 20 "$server_log" >&2
    exit 1
  fi
  sleep 0.2
done

echo "== job kinds offered"
build/bin/loupe kinds
echo
echo "== submitting sae.train (TopK SAE on synthetic data, default parameters)"
id="$(build/bin/loupe --json submit sae.train --label source=quickstart | grep -o '"id":"[0-9a-f]*"' | head -n 1 | cut -d'"' -f4)"
echo "   job $id; watching (Ctrl-C leaves it running; 'loupe watch $id' reattaches)"
build/bin/loupe watch "$id"
echo
echo "== artifacts of job $id"
build/bin/loupe artifacts "$id"
mkdir -p "$root/var/out"
build/bin/loupe download "$id" cfg.json -o "$root/var/out/cfg.json"
build/bin/loupe download "$id" sae_weights.safetensors -o "$root/var/out/sae_weights.safetensors"
echo "== artifacts downloaded to var/out/ (SAELens layout: cfg.json + sae_weights.safetensors)"
