// docs/BENCHMARKS.md holds one section per benchmark script; each script rewrites its own section
// (between markers) and leaves the others as they are.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './local-cluster';

const HEADER = `# Benchmarks

Written by the benchmark scripts (\`npm run bench\`, \`npm run bench:bootstrap\`); each section holds the
figures of that script's last run on this machine.
`;

/** Replaces (or appends) the section `name` of docs/BENCHMARKS.md with `text`. */
export function writeBenchmarkSection(name: string, text: string): string {
  const docs = path.join(repoRoot(), 'docs');
  mkdirSync(docs, { recursive: true });
  const file = path.join(docs, 'BENCHMARKS.md');
  const begin = `<!-- section: ${name} -->`;
  const end = `<!-- end: ${name} -->`;
  const block = `${begin}\n${text.trim()}\n${end}`;
  let doc = existsSync(file) ? readFileSync(file, 'utf8') : HEADER;
  if (!doc.startsWith(HEADER)) doc = HEADER; // a file from before sections: start again
  const at = doc.indexOf(begin);
  const stop = doc.indexOf(end);
  doc = at >= 0 && stop > at ? doc.slice(0, at) + block + doc.slice(stop + end.length) : `${doc.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, doc);
  return file;
}
