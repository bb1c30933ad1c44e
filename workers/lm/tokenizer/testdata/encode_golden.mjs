// Golden ids: each corpus entry encoded by the npm packages themselves.
//   gpt2_golden.txt  — gpt-tokenizer's r50k_base (GPT-2) encode(entry): no
//                      special tokens are added.
//   llama_golden.txt — llama-tokenizer-js encode(entry) with its defaults:
//                      BOS (id 1) first, then a "▁" prepended to the text,
//                      like Hugging Face's Llama 2 tokenizer.json with
//                      add_special_tokens=true.
//   gpt2_special.jsonl — a few texts that contain <|endoftext|>. Hugging Face
//                      splits added tokens out of the text and encodes the
//                      pieces between them independently; the expected ids
//                      are built that way from the package's plain encode of
//                      each piece. (gpt-tokenizer 4.0.0's own
//                      allowedSpecial: 'all' only finds a special token at
//                      the start of the text or right after another one: its
//                      sticky-regex search adds the offset twice.)
// One line per corpus entry, ids separated by spaces.
//
// Usage: node encode_golden.mjs CORPUS.jsonl OUT_DIR
import fs from 'node:fs';
import path from 'node:path';
import { encode as gpt2Encode } from 'gpt-tokenizer/encoding/r50k_base';
import { encode as gpt2AliasEncode } from 'gpt-tokenizer/encoding/gpt2';
import llamaTokenizer from 'llama-tokenizer-js';

const [corpusFile, outDir] = process.argv.slice(2);
if (!outDir) throw new Error('usage: node encode_golden.mjs CORPUS.jsonl OUT_DIR');
const entries = fs.readFileSync(corpusFile, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));

const gpt2 = [];
const llama = [];
let gpt2Tokens = 0, llamaTokens = 0;
for (const text of entries) {
  const g = gpt2Encode(text);
  const alias = gpt2AliasEncode(text);
  if (g.join(' ') !== alias.join(' ')) throw new Error(`gpt2 and r50k_base disagree on ${JSON.stringify(text)}`);
  const l = llamaTokenizer.encode(text);
  // The package's own round trip; a failure here would make it a poor reference.
  if (llamaTokenizer.decode(l) !== text) throw new Error(`llama-tokenizer-js does not round-trip ${JSON.stringify(text)}`);
  gpt2.push(g.join(' '));
  llama.push(l.join(' '));
  gpt2Tokens += g.length;
  llamaTokens += l.length;
}
fs.writeFileSync(path.join(outDir, 'gpt2_golden.txt'), gpt2.join('\n') + '\n');
fs.writeFileSync(path.join(outDir, 'llama_golden.txt'), llama.join('\n') + '\n');

const specialTexts = [
  '<|endoftext|>',
  'Hello<|endoftext|>world',
  'first document.<|endoftext|>Second document.',
  ' <|endoftext|> spaced ',
  '<|endoftext|><|endoftext|>\n\n<|endoftext|>',
  'almost <|endoftext| and <|endoftext|>',
];
const EOT = '<|endoftext|>';
const EOT_ID = 50256;
const special = specialTexts.map((text) => {
  const ids = [];
  text.split(EOT).forEach((piece, i) => {
    if (i > 0) ids.push(EOT_ID);
    ids.push(...gpt2Encode(piece));
  });
  return JSON.stringify({ text, ids });
});
fs.writeFileSync(path.join(outDir, 'gpt2_special.jsonl'), special.join('\n') + '\n');
console.error(`golden: ${entries.length} entries; gpt2 ${gpt2Tokens} tokens; llama ${llamaTokens} tokens`);
