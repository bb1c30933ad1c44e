#!/usr/bin/env bash
# Regenerates the tokenizer agreement fixtures in this directory:
#   gpt2_tokenizer.json.gz, llama_tokenizer.json.gz — the npm packages'
#       vocabularies as Hugging Face tokenizer.json (export_vocabs.mjs);
#   corpus.jsonl.gz — the text entries, one JSON string a line (make_corpus.mjs);
#   gpt2_golden.txt.gz, llama_golden.txt.gz, gpt2_special.jsonl — the
#       packages' own ids for them (encode_golden.mjs);
#   LICENSE.gpt-tokenizer, LICENSE.llama-tokenizer-js — the packages' licenses.
# Needs node and npm with registry access; the versions are pinned so the
# fixtures do not drift. The corpus reads Debian files (license texts,
# /usr/share/doc/*/copyright, headers in /usr/include), so another machine can
# give a slightly different corpus; the committed one is what the tests use.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cp "$here"/export_vocabs.mjs "$here"/make_corpus.mjs "$here"/encode_golden.mjs "$work"/
cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund gpt-tokenizer@4.0.0 llama-tokenizer-js@1.2.2 >/dev/null

node export_vocabs.mjs "$work/out"
node make_corpus.mjs "$work/out/corpus.jsonl"
node encode_golden.mjs "$work/out/corpus.jsonl" "$work/out"

for f in gpt2_tokenizer.json llama_tokenizer.json corpus.jsonl gpt2_golden.txt llama_golden.txt; do
  gzip -n -9 -c "$work/out/$f" >"$here/$f.gz"   # -n: no timestamp, stable bytes
done
cp "$work/out/gpt2_special.jsonl" "$here/"
cp node_modules/gpt-tokenizer/LICENSE "$here/LICENSE.gpt-tokenizer"
cp node_modules/llama-tokenizer-js/LICENSE.md "$here/LICENSE.llama-tokenizer-js"
echo "fixtures written to $here"
