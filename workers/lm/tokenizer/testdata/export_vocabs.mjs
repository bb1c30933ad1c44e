// Writes the vocabularies shipped by two npm packages as Hugging Face
// tokenizer.json files:
//   gpt-tokenizer (r50k_base = GPT-2): tiktoken-style ranks, i.e. byte strings
//     ordered by id. Hugging Face BPE needs the merges instead; each token's
//     merge is recovered by running rank-ordered BPE on its bytes with only
//     the tokens ranked below it, which leaves exactly two parts.
//   llama-tokenizer-js (Llama 1/2): the vocabulary by id and merges by
//     priority, which map one to one onto a Llama 2 tokenizer.json.
//
// Usage (from a directory where both packages are installed):
//   node export_vocabs.mjs OUT_DIR   -> OUT_DIR/gpt2_tokenizer.json,
//                                       OUT_DIR/llama_tokenizer.json
import fs from 'node:fs';
import path from 'node:path';
import gpt2Ranks from 'gpt-tokenizer/bpeRanks/r50k_base';
import llamaTokenizer from 'llama-tokenizer-js';

const outDir = process.argv[2];
if (!outDir) throw new Error('usage: node export_vocabs.mjs OUT_DIR');

// GPT-2's reversible byte -> printable character table: printable Latin-1
// bytes stand for themselves, the rest are shifted to U+0100 upwards.
function byteToUnicode() {
  const table = new Array(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : 256 + shifted++);
  }
  return table;
}
const B2U = byteToUnicode();
const encoder = new TextEncoder();
const toBytes = (v) => (typeof v === 'string' ? Array.from(encoder.encode(v)) : Array.from(v));
const byteKey = (bytes) => String.fromCharCode(...bytes);  // latin-1 key
const visible = (bytes) => bytes.map((b) => B2U[b]).join('');

// Emits a tokenizer.json with vocab and merges in id/rank order (object key
// order of JSON.stringify would put numeric-looking tokens first).
function writeTokenizerJson(file, head, model, vocab, merges) {
  const lines = [];
  lines.push('{');
  for (const [k, v] of Object.entries(head)) lines.push(`  ${JSON.stringify(k)}: ${JSON.stringify(v)},`);
  lines.push('  "model": {');
  for (const [k, v] of Object.entries(model)) lines.push(`    ${JSON.stringify(k)}: ${JSON.stringify(v)},`);
  lines.push('    "vocab": {');
  lines.push(vocab.map(([tok, id]) => `      ${JSON.stringify(tok)}: ${id}`).join(',\n'));
  lines.push('    },');
  lines.push('    "merges": [');
  lines.push(merges.map(([a, b]) => `      ${JSON.stringify(a + ' ' + b)}`).join(',\n'));
  lines.push('    ]');
  lines.push('  }');
  lines.push('}');
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

// ---- GPT-2 ---------------------------------------------------------------------
function exportGpt2() {
  const tokens = gpt2Ranks.map(toBytes);  // index = rank = id
  const rankOf = new Map(tokens.map((t, r) => [byteKey(t), r]));
  const vocab = [];
  const merges = [];
  for (let r = 0; r < tokens.length; r++) {
    const t = tokens[r];
    vocab.push([visible(t), r]);
    if (t.length < 2) continue;
    // Rank-ordered BPE over t's bytes using only ranks < r.
    let parts = t.map((b) => [b]);
    while (parts.length > 2) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const rk = rankOf.get(byteKey(parts[i].concat(parts[i + 1])));
        if (rk !== undefined && rk < r && rk < bestRank) { bestRank = rk; best = i; }
      }
      if (best < 0) break;
      parts.splice(best, 2, parts[best].concat(parts[best + 1]));
    }
    if (parts.length !== 2) throw new Error(`token ${r} has no two-part merge`);
    merges.push([visible(parts[0]), visible(parts[1])]);
  }
  const eot = { id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true };
  vocab.push([eot.content, eot.id]);
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  writeTokenizerJson(path.join(outDir, 'gpt2_tokenizer.json'), {
    version: '1.0', truncation: null, padding: null, added_tokens: [eot], normalizer: null,
    pre_tokenizer: byteLevel, post_processor: { ...byteLevel, trim_offsets: false }, decoder: byteLevel,
  }, {
    type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
    fuse_unk: false, byte_fallback: false,
  }, vocab, merges);
  console.error(`gpt2: ${vocab.length} tokens, ${merges.length} merges`);
}

// ---- Llama ---------------------------------------------------------------------
function exportLlama() {
  const byId = llamaTokenizer.vocabById;
  const vocab = byId.map((t, id) => [t, id]);
  // merges: Map "a b" -> priority, inserted in priority order. Llama tokens
  // hold no plain spaces ("▁" stands for them), so the first space splits.
  const merges = [];
  for (const key of llamaTokenizer.merges.keys()) {
    const sp = key.indexOf(' ');
    merges.push([key.slice(0, sp), key.slice(sp + 1)]);
  }
  const special = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const bos = { SpecialToken: { id: '<s>', type_id: 0 } };
  writeTokenizerJson(path.join(outDir, 'llama_tokenizer.json'), {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [
      { type: 'Prepend', prepend: '▁' },
      { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
    ] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [bos, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [bos, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'Sequence', decoders: [
      { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
      { type: 'ByteFallback' },
      { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 1, stop: 0 },
    ] },
  }, {
    type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: true, byte_fallback: true,
  }, vocab, merges);
  console.error(`llama: ${vocab.length} tokens, ${merges.length} merges`);
}

fs.mkdirSync(outDir, { recursive: true });
exportGpt2();
exportLlama();
