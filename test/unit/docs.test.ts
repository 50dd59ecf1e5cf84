// The README is the user's manual: its configuration table must list every setting the code has.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { envName, SETTINGS } from '../../src/config';

const root = path.join(__dirname, '..', '..');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');

test('the README configuration table has a row for every serve flag, with its variable', () => {
  const missing = SETTINGS.filter((s) => !readme.includes(`| \`--${s.flag}\` | \`${envName(s.flag)}\``)).map((s) => s.flag);
  expect(missing).toEqual([]);
  const rows = readme.match(/^\| `--[a-z-]+` \|/gm) ?? [];
  expect(rows.length).toBe(SETTINGS.length);
});

test('the README starts with the install-and-run command and the test command that CI runs', () => {
  const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  expect(firstBlock).toContain('npm install && npm start');
  expect(firstBlock).toContain('npm test');
  expect(readFileSync(path.join(root, '.ci', 'run'), 'utf8')).toMatch(/^npm test$/m);
});
