// Builds the agreement corpus: one JSON string per line (entries may hold
// newlines, tabs and runs of spaces, which a plain text file could not keep).
// Sources: English prose from Debian's license texts and package copyright
// files, C/C++ from /usr/include, and generated numbers, Unicode from several
// scripts and whitespace runs. Generation is seeded, so the same Debian files
// give the same corpus.
//
// Usage: node make_corpus.mjs OUT.jsonl
import fs from 'node:fs';

const out = process.argv[2];
if (!out) throw new Error('usage: node make_corpus.mjs OUT.jsonl');

// mulberry32: tiny seeded PRNG so the corpus is reproducible.
let seed = 0x10a7e;
function rand() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

function readLines(path) {
  try {
    return fs.readFileSync(path, 'utf8').split('\n');
  } catch {
    return [];  // a missing file just contributes nothing
  }
}

// Every k-th non-blank line of a list, up to n of them.
function sample(lines, n) {
  const kept = lines.filter((l) => l.trim().length > 0);
  const step = Math.max(1, Math.floor(kept.length / n));
  const res = [];
  for (let i = 0; i < kept.length && res.length < n; i += step) res.push(kept[i]);
  return res;
}

// Consecutive lines joined with their newlines, as a paragraph or code block.
function blocks(lines, n, len) {
  const res = [];
  const step = Math.max(len, Math.floor(lines.length / n));
  for (let i = 0; i + len <= lines.length && res.length < n; i += step) {
    const b = lines.slice(i, i + len).join('\n');
    if (b.trim().length > 0) res.push(b);
  }
  return res;
}

const entries = [];
const add = (s, tag) => entries.push({ s, tag });

// --- Prose -----------------------------------------------------------------
const licenses = ['GPL-3', 'Apache-2.0', 'MPL-2.0', 'LGPL-2.1', 'GFDL-1.3', 'Artistic', 'BSD', 'CC0-1.0'];
for (const f of licenses) {
  const lines = readLines(`/usr/share/common-licenses/${f}`);
  for (const l of sample(lines, 45)) add(l, 'prose');
  for (const b of blocks(lines, 6, 4)) add(b, 'prose-block');
}
const docs = fs.existsSync('/usr/share/doc') ? fs.readdirSync('/usr/share/doc').sort() : [];
let copyrights = 0;
for (const d of docs) {
  if (copyrights >= 25) break;
  const lines = readLines(`/usr/share/doc/${d}/copyright`);
  if (lines.length < 20) continue;
  copyrights++;
  for (const l of sample(lines, 4)) add(l, 'copyright');
}

// --- Code --------------------------------------------------------------------
const headers = [
  '/usr/include/stdio.h', '/usr/include/stdlib.h', '/usr/include/string.h',
  '/usr/include/math.h', '/usr/include/zlib.h', '/usr/include/pcre2.h',
  '/usr/include/elf.h', '/usr/include/c++/12/bits/stl_vector.h',
  '/usr/include/c++/12/bits/basic_string.h', '/usr/include/c++/12/optional',
];
for (const h of headers) {
  const lines = readLines(h);
  for (const l of sample(lines, 30)) add(l, 'code');
  for (const b of blocks(lines, 4, 8)) add(b, 'code-block');
}

// --- Numbers -----------------------------------------------------------------
const numberForms = [
  () => String(int(0, 9)),
  () => String(int(0, 999999999)),
  () => `${int(1, 9999)}.${int(0, 99999)}`,
  () => int(1000, 9999999).toLocaleString('en-US'),
  () => `${int(1, 9)}.${int(0, 999)}e${pick(['-', '+', ''])}${int(1, 30)}`,
  () => `0x${int(0, 0xffffff).toString(16)}`,
  () => `${int(1900, 2099)}-${String(int(1, 12)).padStart(2, '0')}-${String(int(1, 28)).padStart(2, '0')}`,
  () => `${int(0, 23)}:${String(int(0, 59)).padStart(2, '0')}:${String(int(0, 59)).padStart(2, '0')}`,
  () => `+1 (${int(200, 999)}) ${int(200, 999)}-${int(1000, 9999)}`,
  () => `v${int(0, 20)}.${int(0, 40)}.${int(0, 200)}`,
  () => `${int(0, 100)}%`,
  () => `$${int(0, 99999)}.${String(int(0, 99)).padStart(2, '0')}`,
  () => `-${int(1, 1000)}`,
  () => `${int(1, 12)}/${int(1, 31)}/${int(0, 99)}`,
  () => String(int(0, 2 ** 31)).repeat(int(1, 3)),
  () => `${int(0, 255)}.${int(0, 255)}.${int(0, 255)}.${int(0, 255)}`,
];
const numberWords = ['total', 'x =', 'price:', 'in', 'rows', 'ID', 'step', 'loss', 'of', 'and', '=', '+', '*', '(', ')'];
for (let i = 0; i < 200; i++) {
  const parts = [];
  for (let k = int(1, 8); k > 0; k--) parts.push(rand() < 0.6 ? pick(numberForms)() : pick(numberWords));
  add(parts.join(pick([' ', ' ', ', ', '\t', '  '])), 'numbers');
}

// --- Unicode -----------------------------------------------------------------
const words = {
  latin: ['café', 'naïve', 'façade', 'Ærøskøbing', 'straße', 'Größe', 'über', 'jalapeño', 'coöperate', 'Łódź', 'Žluťoučký', 'kůň', 'Tiếng', 'Việt', 'người', 'İstanbul', 'ğüşıöç', 'Ångström', 'résumé', 'déjà', 'São', 'Paulo'],
  greek: ['Καλημέρα', 'κόσμε', 'λόγος', 'Ἀθῆναι', 'ψυχή', 'ΑΒΓΔ', 'μῆνιν'],
  cyrillic: ['Привет', 'мир', 'Съешь', 'же', 'ещё', 'этих', 'мягких', 'булок', 'Україна', 'ЁЖ'],
  arabic: ['مرحبا', 'بالعالم', 'العربية', 'كتاب', '٣٤٥'],
  hebrew: ['שלום', 'עולם', 'עִבְרִית'],
  devanagari: ['नमस्ते', 'दुनिया', 'हिन्दी', '१२३'],
  thai: ['สวัสดี', 'ภาษาไทย', 'ครับ'],
  cjk: ['你好', '世界', '中文字符', '漢字', '東京', 'こんにちは', 'カタカナ', 'ひらがな', '日本語のテキスト', '안녕하세요', '세계', '한국어', '龍', '鬱', '齉'],
  emoji: ['😀', '🎉', '👍🏽', '👨‍👩‍👧‍👦', '🇫🇷', '🇯🇵', '❤️', '🚀', '🧪', '🐍', '✨', '🤖', '🏳️‍🌈', '🙏🏿', '🍣'],
  symbols: ['€', '£', '¥', '₹', '±', '×', '÷', '≤', '≥', '≠', '∞', '∑', '∫', '√', 'π', 'µ', '°C', '™', '©', '→', '⇒', '∀x∈ℝ', '│', '┌─┐', '…', '–', '—', '«', '»', '„', '“', '”', '‘', '’', '½', '²', '³', 'ℕ', 'Ⅻ'],
  combining: ['e\u0301', 'a\u0308', 'n\u0303', 'Z\u0335\u0327a\u0336\u0317l\u0334g\u0338o\u0335', 'o\u0328\u0304'],
};
const scripts = Object.keys(words);
for (let i = 0; i < 260; i++) {
  const parts = [];
  const n = int(1, 10);
  for (let k = 0; k < n; k++) {
    const r = rand();
    if (r < 0.6) parts.push(pick(words[pick(scripts)]));
    else if (r < 0.75) parts.push(pick(['the', 'and', 'is', 'a', 'test', 'of', "it's", 'with']));
    else if (r < 0.85) parts.push(String(int(0, 9999)));
    else parts.push(pick(['.', ',', '!', '?', ':', ';', '(', ')', '"', "'", '-', '/']));
  }
  // Sometimes glue words without spaces: scripts like CJK and Thai do.
  add(parts.join(rand() < 0.3 ? '' : ' '), 'unicode');
}

// --- Whitespace --------------------------------------------------------------
// U+0085 and U+FEFF are left out on purpose: JavaScript's \s and the
// Hugging Face/Python-regex \s disagree on them (see docs/tokenizers.md).
const spaces = [' ', '  ', '   ', '    ', '        ', '\t', '\t\t', '\n', '\n\n', '\r\n', ' \n', '\n ', '\u00a0', '\u3000', '\u2002', '\u2009', '\u202f', '\u2028', '\v', '\f'];
const shortWords = ['if', 'x', 'return', 'Hello', 'world', '{', '}', '()', 'foo.bar', '42', "don't", 'ÉTÉ', '中', '😀'];
for (let i = 0; i < 200; i++) {
  const parts = [];
  if (rand() < 0.3) parts.push(pick(spaces));
  for (let k = int(1, 7); k > 0; k--) {
    parts.push(pick(shortWords));
    parts.push(pick(spaces).repeat(int(1, 3)));
  }
  if (rand() < 0.5) parts.pop();  // sometimes no trailing whitespace
  add(parts.join(''), 'whitespace');
}
for (const w of [' ', '  ', '\t', '\n', '\n\n\n', ' \t \n', '        ', '\u3000\u3000', '\u00a0 ', '\r\n\r\n']) add(w, 'whitespace-only');

// --- Contractions and casing ---------------------------------------------------
const contr = ["don't", "DON'T", "I'm", "I'M", "you're", "YOU'RE", "we've", "they'll", "He'd", "it's", "It'S", "'s", "'t'", "rock'n'roll", "O'Neil", "''quoted''", "y'all're"];
for (let i = 0; i < 60; i++) {
  const parts = [];
  for (let k = int(2, 8); k > 0; k--) parts.push(rand() < 0.5 ? pick(contr) : pick(['the', 'CAT', 'Cat', 'cAt', 'USA', 'x2', 'e-mail', 'snake_case', 'camelCase', 'URL:', 'https://example.org/a?b=1&c=2']));
  add(parts.join(' '), 'contractions');
}

// --- Long entries: a few kilobytes in one entry (SentencePiece-style BPE sees
// the whole entry as one word, so this exercises the long-word merge path).
for (let i = 0; i < 8; i++) {
  const pool = entries.filter((e) => e.tag.startsWith('prose') || e.tag === 'unicode' || e.tag === 'code');
  const parts = [];
  for (let k = 0; k < 40; k++) parts.push(pick(pool).s);
  add(parts.join(pick([' ', '\n', '  '])), 'long');
}

// Entries the two packages cannot be compared on as plain text: special-token
// strings (both packages treat them differently from Hugging Face), the
// characters named above, and empty strings (llama-tokenizer-js returns no
// BOS for them).
const banned = /<\|endoftext\|>|<s>|<\/s>|<unk>|\u0085|\ufeff/;
const seen = new Set();
const lines = [];
const byTag = {};
for (const e of entries) {
  if (e.s.length === 0 || banned.test(e.s) || seen.has(e.s)) continue;
  seen.add(e.s);
  lines.push(JSON.stringify(e.s));
  byTag[e.tag] = (byTag[e.tag] ?? 0) + 1;
}
fs.writeFileSync(out, lines.join('\n') + '\n');
console.error(`corpus: ${lines.length} entries`, byTag);
