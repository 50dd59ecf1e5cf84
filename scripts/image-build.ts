// Builds the Dockerfile without a Docker engine (none runs on these machines), so that what the
// image would hold can be checked: each stage gets a directory standing in for its root
// filesystem, and a small interpreter runs the Dockerfile's instructions against it.
//
//   node dist/scripts/image-build.js [--out <dir>] [--repo <dir>]
//
// Only the subset the Dockerfile uses is understood: FROM <image> [AS <name>], WORKDIR,
// COPY [--from=<stage>] <src>... <dest>, RUN <shell command>, ENV k=v (with $VAR expansion), USER,
// VOLUME, EXPOSE, ENTRYPOINT and CMD in exec form. Anything else stops the build with a message.
// The FROM image itself is not reproduced: the local node and npm stand in for it, and the parts
// of its configuration that a stage inherits (PATH, ENTRYPOINT, CMD) come from BASE_IMAGES.
//
// RUN refuses commands with absolute paths other than /dev/null, so a command cannot reach outside
// its stage root by accident. This is a guard against mistakes, not a sandbox.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

export interface ImageLayout {
  /** Host directory standing in for the final stage's `/`. */
  root: string;
  /** The scratch directory holding every stage root and image.json. */
  out: string;
  workdir: string;
  env: Record<string, string>;
  user: string | undefined;
  entrypoint: string[];
  cmd: string[];
  exposed: string[];
  volumes: string[];
  /** Each stage's root, build time and size on disk (the image is the last one). */
  stages: Array<{ name: string; root: string; durationMs: number; sizeBytes: number }>;
  /** node_modules of the final stage's WORKDIR. */
  nodeModules: { sizeBytes: number; packages: number; devDependenciesPresent: string[] };
  /** Where `entrypoint[0]` resolves through the image PATH, inside `root` (undefined: not found). */
  entrypointHostPath: string | undefined;
}

export interface BuildOptions {
  out?: string;
  repo?: string;
  log?: (line: string) => void;
}

interface ImageConfig {
  env: Record<string, string>;
  entrypoint: string[];
  cmd: string[];
}

/** What the base images declare themselves (`docker inspect`), for the parts a stage inherits. */
const BASE_IMAGES: Record<string, ImageConfig> = {
  'node:20-bookworm-slim': {
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
    entrypoint: ['docker-entrypoint.sh'],
    cmd: ['node'],
  },
};

/**
 * Host variables a RUN step sees besides the stage's ENV: where npm keeps its cache and config
 * (HOME), and how it reaches the registry. docker build passes nothing of the host; passing more
 * here (say NODE_ENV=test from jest, or npm_config_* from an outer `npm run`) would change what
 * npm installs.
 */
const HOST_ENV_KEPT = ['HOME', 'USER', 'LANG', 'TMPDIR', 'NODE_EXTRA_CA_CERTS', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY'];

interface Stage {
  index: number;
  name: string;
  root: string;
  workdir: string;
  env: Record<string, string>;
  user: string | undefined;
  entrypoint: string[];
  cmd: string[];
  /** CMD still comes from the base image: setting ENTRYPOINT clears it, as in Docker. */
  cmdInherited: boolean;
  exposed: string[];
  volumes: string[];
  startedMs: number;
}

interface Instruction {
  line: number;
  op: string;
  args: string;
}

class DockerfileError extends Error {
  override name = 'DockerfileError';
}

/** Instructions with continuation lines joined and comments dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const first = i;
    let line = (lines[i] as string).trim();
    if (line === '' || line.startsWith('#')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      i++;
      const next = (lines[i] as string).trim();
      line = line.slice(0, -1).trimEnd() + (next.startsWith('#') ? '' : ` ${next}`);
    }
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (m) out.push({ line: first + 1, op: (m[1] as string).toUpperCase(), args: (m[2] as string).trim() });
  }
  return out;
}

/** `$NAME` and `${NAME}` from env ('' when unset), as Docker substitutes in ENV, WORKDIR, COPY, ... */
export function expandVars(s: string, env: Record<string, string>): string {
  return s.replace(
    /\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (_, a?: string, b?: string) => env[(a ?? b) as string] ?? '',
  );
}

/** Splits on blanks, honouring quotes and backslashes; expands variables outside single quotes. */
function words(s: string, env: Record<string, string>): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
    } else if (c === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) throw new DockerfileError(`unterminated ' in ${s}`);
      cur += s.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      const end = s.indexOf('"', i + 1);
      if (end < 0) throw new DockerfileError(`unterminated " in ${s}`);
      cur += expandVars(s.slice(i + 1, end), env);
      i = end;
    } else if (c === '$') {
      const m = /^\$(?:\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)/.exec(s.slice(i));
      if (m) {
        cur += expandVars(m[0], env);
        i += m[0].length - 1;
      } else cur += c;
    } else cur += c;
  }
  if (inWord) out.push(cur);
  return out;
}

/** Exec form: a JSON array of strings. */
function execForm(op: string, args: string): string[] {
  let v: unknown;
  try {
    v = JSON.parse(args);
  } catch {
    v = undefined;
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw new DockerfileError(`${op} must use the exec form ["cmd", "arg"] (signals then reach the process itself); got ${args}`);
  }
  return v as string[];
}

/** Absolute paths in a RUN command (other than /dev/null): they would act on the host, not the stage root. */
export function absolutePathsIn(command: string): string[] {
  const found: string[] = [];
  for (const m of command.matchAll(/(?:^|[\s'"=:;|&(<>`])((?:\/|~\/?)[^\s'"=:;|&()<>`]*)/g)) {
    const p = m[1] as string;
    const isUrl = m[0].startsWith(':') && p.startsWith('//'); // https://...
    if (p !== '/dev/null' && !isUrl) found.push(p);
  }
  return found;
}

interface IgnoreRule {
  re: RegExp;
  negate: boolean;
}

function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
      if (pattern[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** .dockerignore: patterns anchored at the context root; a match on a directory excludes its contents; `!` re-includes. */
export function readDockerignore(repo: string): (rel: string) => boolean {
  const file = path.join(repo, '.dockerignore');
  const rules: IgnoreRule[] = [];
  if (fs.existsSync(file)) {
    for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
      let p = raw.trim();
      if (p === '' || p.startsWith('#')) continue;
      const negate = p.startsWith('!');
      if (negate) p = p.slice(1).trim();
      p = path.posix.normalize(p).replace(/^\/+/, '').replace(/\/+$/, '');
      rules.push({ re: globToRegExp(p), negate });
    }
  }
  return (rel) => {
    const parts = rel.split('/');
    let ignored = false;
    for (const r of rules) {
      for (let n = 1; n <= parts.length; n++) {
        if (r.re.test(parts.slice(0, n).join('/'))) {
          ignored = !r.negate;
          break;
        }
      }
    }
    return ignored;
  };
}

/** Paths under `base` matching `pattern` (`*`, `?` within a segment), relative, sorted. */
function glob(base: string, pattern: string): string[] {
  let found = [''];
  for (const seg of pattern.split('/').filter((s) => s !== '' && s !== '.')) {
    const next: string[] = [];
    for (const dir of found) {
      if (!/[*?]/.test(seg)) {
        if (fs.existsSync(path.join(base, dir, seg))) next.push(path.posix.join(dir, seg));
        continue;
      }
      const abs = path.join(base, dir);
      if (!fs.existsSync(abs) || !fs.statSync(abs).isDirectory()) continue;
      const re = globToRegExp(seg);
      for (const e of fs.readdirSync(abs).sort()) if (re.test(e)) next.push(path.posix.join(dir, e));
    }
    found = next;
  }
  // `COPY . .`: the base directory itself.
  return found.map((f) => (f === '' ? '.' : f));
}

/**
 * Copies a file, a symlink (as the link itself, as COPY does) or a directory tree, with modes, taking
 * only paths `keep` accepts. Not fs.cpSync: that refuses a destination inside the source, which
 * `COPY . .` with --out inside the repo is, even though the filter leaves the destination out.
 */
function copyTree(src: string, dest: string, keep: (src: string) => boolean): void {
  if (!keep(src)) return;
  const st = fs.lstatSync(src);
  if (st.isDirectory()) {
    fs.mkdirSync(dest, { recursive: true });
    fs.chmodSync(dest, st.mode & 0o7777);
    for (const e of fs.readdirSync(src)) copyTree(path.join(src, e), path.join(dest, e), keep);
  } else if (st.isSymbolicLink()) {
    fs.rmSync(dest, { force: true });
    fs.symlinkSync(fs.readlinkSync(src), dest);
  } else {
    fs.copyFileSync(src, dest);
    fs.chmodSync(dest, st.mode & 0o7777);
  }
}

function treeSizeBytes(p: string): number {
  const st = fs.lstatSync(p);
  if (!st.isDirectory()) return st.size;
  let total = st.size;
  for (const e of fs.readdirSync(p)) total += treeSizeBytes(path.join(p, e));
  return total;
}

function findRepo(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'Dockerfile')) && fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no Dockerfile above ${__dirname}: pass --repo`);
  }
}

const mib = (bytes: number) => `${(bytes / (1 << 20)).toFixed(1)} MiB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Runs the Dockerfile of `repo` into stage roots under `out`; returns the final stage's layout and writes out/image.json. */
export async function buildImage(opts: BuildOptions = {}): Promise<ImageLayout> {
  const repo = path.resolve(opts.repo ?? findRepo());
  const out = path.resolve(opts.out ?? fs.mkdtempSync(path.join(os.tmpdir(), 'quorumkv-image-')));
  const log = opts.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const ignored = readDockerignore(repo);
  const instructions = parseDockerfile(fs.readFileSync(path.join(repo, 'Dockerfile'), 'utf8'));
  const stagesDir = path.join(out, 'stages');
  // Only the directory this script owns is emptied, so a reused --out starts from clean roots.
  fs.rmSync(stagesDir, { recursive: true, force: true });
  fs.mkdirSync(stagesDir, { recursive: true });
  log(`building ${path.join(repo, 'Dockerfile')} into ${out}`);

  const stages: Stage[] = [];
  const finished: ImageLayout['stages'] = [];
  let stage: Stage | undefined;
  const hostPath = (s: Stage, imagePath: string): string => {
    const p = path.join(s.root, path.posix.resolve('/', imagePath));
    if (p !== s.root && !p.startsWith(s.root + path.sep)) throw new DockerfileError(`${imagePath} leaves the stage root`);
    return p;
  };
  const finish = (s: Stage) =>
    finished.push({ name: s.name, root: s.root, durationMs: Date.now() - s.startedMs, sizeBytes: treeSizeBytes(s.root) });

  for (const ins of instructions) {
    const where = `Dockerfile:${ins.line} ${ins.op}`;
    try {
      if (ins.op === 'FROM') {
        if (stage) finish(stage);
        const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
        if (!m) throw new DockerfileError('expected FROM <image> [AS <name>]');
        const image = m[1] as string;
        const name = m[2] ?? String(stages.length);
        const root = path.join(stagesDir, name);
        const parent = stages.find((s) => s.name === image);
        const base = parent ?? BASE_IMAGES[image];
        if (!base)
          throw new DockerfileError(`unknown base image ${image}; known: ${Object.keys(BASE_IMAGES).join(', ')} or an earlier stage`);
        if (parent) {
          copyTree(parent.root, root, () => true);
        } else {
          fs.mkdirSync(root, { recursive: true });
          const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' }).stdout.trim();
          log(`${where} ${image}: not reproduced; the local node ${process.version} and npm ${npm} stand in for it`);
          const wanted = /^node:(\d+)/.exec(image)?.[1];
          if (wanted && `v${wanted}` !== process.version.split('.')[0]) {
            log(`  warning: the image has node ${wanted}, this machine ${process.version}: native modules and engines may differ`);
          }
        }
        stage = {
          index: stages.length,
          name,
          root,
          workdir: parent?.workdir ?? '/',
          env: { ...base.env },
          user: parent?.user,
          entrypoint: [...base.entrypoint],
          cmd: [...base.cmd],
          cmdInherited: true,
          exposed: [...(parent?.exposed ?? [])],
          volumes: [...(parent?.volumes ?? [])],
          startedMs: Date.now(),
        };
        stages.push(stage);
        log(`--- stage ${name} (${root})`);
        continue;
      }
      if (!stage) throw new DockerfileError('an instruction before the first FROM');
      const s = stage;
      switch (ins.op) {
        case 'WORKDIR': {
          s.workdir = path.posix.resolve(s.workdir, expandVars(ins.args, s.env));
          fs.mkdirSync(hostPath(s, s.workdir), { recursive: true });
          log(`${where} ${s.workdir}`);
          break;
        }
        case 'ENV': {
          const before = { ...s.env };
          const ws = words(ins.args, before);
          if (ws.length > 0 && !(ws[0] as string).includes('=')) {
            // Legacy form: ENV <key> <value...>
            s.env[ws[0] as string] = ws.slice(1).join(' ');
          } else {
            for (const w of ws) {
              const eq = w.indexOf('=');
              if (eq <= 0) throw new DockerfileError(`expected key=value, got ${w}`);
              s.env[w.slice(0, eq)] = w.slice(eq + 1);
            }
          }
          log(`${where} ${ins.args}`);
          break;
        }
        case 'COPY':
          copy(s, ins.args, where);
          break;
        case 'RUN':
          await run(s, ins.args, where);
          break;
        case 'USER':
          s.user = expandVars(ins.args, s.env);
          log(`${where} ${s.user}`);
          break;
        case 'VOLUME': {
          const vols = ins.args.startsWith('[') ? execForm(ins.op, ins.args) : words(ins.args, s.env);
          for (const v of vols) {
            fs.mkdirSync(hostPath(s, v), { recursive: true });
            if (!s.volumes.includes(v)) s.volumes.push(v);
          }
          log(`${where} ${vols.join(' ')}`);
          break;
        }
        case 'EXPOSE':
          for (const p of words(ins.args, s.env)) {
            const port = p.includes('/') ? p : `${p}/tcp`;
            if (!s.exposed.includes(port)) s.exposed.push(port);
          }
          log(`${where} ${ins.args}`);
          break;
        case 'ENTRYPOINT':
          s.entrypoint = execForm(ins.op, ins.args);
          if (s.cmdInherited) s.cmd = [];
          log(`${where} ${JSON.stringify(s.entrypoint)}`);
          break;
        case 'CMD':
          s.cmd = execForm(ins.op, ins.args);
          s.cmdInherited = false;
          log(`${where} ${JSON.stringify(s.cmd)}`);
          break;
        default:
          throw new DockerfileError(
            'not supported by this interpreter (FROM, WORKDIR, COPY, RUN, ENV, USER, VOLUME, EXPOSE, ENTRYPOINT, CMD are)',
          );
      }
    } catch (err) {
      if (err instanceof DockerfileError) throw new DockerfileError(`${where}: ${err.message}`);
      throw err;
    }
  }
  if (!stage) throw new DockerfileError('Dockerfile has no FROM');
  finish(stage);

  // --- the final stage, as `docker inspect` and `docker run` would see it
  const final = stage;
  const appDir = hostPath(final, final.workdir);
  const modules = path.join(appDir, 'node_modules');
  const pkgPath = path.join(appDir, 'package.json');
  const devDeps = fs.existsSync(pkgPath) ? Object.keys(JSON.parse(fs.readFileSync(pkgPath, 'utf8')).devDependencies ?? {}) : [];
  const nodeModules = fs.existsSync(modules)
    ? {
        sizeBytes: treeSizeBytes(modules),
        packages: fs.readdirSync(modules).reduce((n, e) => {
          if (e.startsWith('.')) return n;
          return n + (e.startsWith('@') ? fs.readdirSync(path.join(modules, e)).length : 1);
        }, 0),
        devDependenciesPresent: devDeps.filter((d) => fs.existsSync(path.join(modules, d))),
      }
    : { sizeBytes: 0, packages: 0, devDependenciesPresent: [] };
  const program = final.entrypoint[0] ?? final.cmd[0];
  const entrypointHostPath = program
    ? program.includes('/')
      ? hostPath(final, path.posix.resolve(final.workdir, program))
      : (final.env.PATH ?? '')
          .split(':')
          .filter((dir) => dir.startsWith('/'))
          .map((dir) => hostPath(final, path.posix.join(dir, program)))
          .find((p) => fs.existsSync(p))
    : undefined;

  const layout: ImageLayout = {
    root: final.root,
    out,
    workdir: final.workdir,
    env: final.env,
    user: final.user,
    entrypoint: final.entrypoint,
    cmd: final.cmd,
    exposed: final.exposed,
    volumes: final.volumes,
    stages: finished,
    nodeModules,
    entrypointHostPath,
  };
  const { root, workdir, env, user, entrypoint, cmd, exposed, volumes } = layout;
  fs.writeFileSync(
    path.join(out, 'image.json'),
    `${JSON.stringify({ root, workdir, env, user, entrypoint, cmd, exposed, volumes }, null, 2)}\n`,
  );

  log('');
  log(`image (stage ${final.name}) at ${final.root}`);
  for (const st of finished) log(`  stage ${st.name}: ${secs(st.durationMs)}, ${mib(st.sizeBytes)} on top of the base image`);
  log(
    `  ${final.workdir}/node_modules: ${mib(nodeModules.sizeBytes)}, ${nodeModules.packages} packages; dev dependencies present: ${
      nodeModules.devDependenciesPresent.length === 0 ? 'none' : nodeModules.devDependenciesPresent.join(', ')
    }`,
  );
  for (const tool of ['typescript', 'jest']) {
    log(`  ${tool}: ${fs.existsSync(path.join(modules, tool)) ? 'PRESENT (should not be)' : 'absent'}`);
  }
  log(`  ENTRYPOINT + CMD: ${JSON.stringify([...final.entrypoint, ...final.cmd])}`);
  log(
    `  ${program ?? '(no program)'} resolves to ${
      entrypointHostPath
        ? `${entrypointHostPath} -> ${fs.realpathSync(entrypointHostPath)}`
        : 'nothing in the stage root (the base image would provide it)'
    }`,
  );
  log(`  ENV PATH=${final.env.PATH ?? ''}`);
  log(`  USER ${final.user ?? '(root)'}, WORKDIR ${final.workdir}, EXPOSE ${final.exposed.join(' ')}, VOLUME ${final.volumes.join(' ')}`);
  log(`  manifest: ${path.join(out, 'image.json')}`);
  return layout;

  function copy(s: Stage, args: string, where: string): void {
    const ws = args.startsWith('[') ? execForm('COPY', args) : words(args, s.env);
    let from: Stage | undefined;
    while (ws[0]?.startsWith('--')) {
      const flag = ws.shift() as string;
      const m = /^--from=(.+)$/.exec(flag);
      if (!m) throw new DockerfileError(`COPY flag ${flag} is not supported (only --from=<stage>)`);
      from = stages.find((st) => st.name === m[1] || String(st.index) === m[1]);
      if (!from || from === s) throw new DockerfileError(`--from=${m[1]}: no earlier stage of that name`);
    }
    if (ws.length < 2) throw new DockerfileError('COPY needs at least one source and a destination');
    const destRaw = ws.pop() as string;
    const dest = path.posix.resolve(s.workdir, destRaw);
    const base = from ? from.root : repo;
    const sources: string[] = [];
    for (const src of ws) {
      const pattern = from ? path.posix.resolve('/', src).slice(1) : path.posix.normalize(src);
      if (!from && (pattern.startsWith('..') || path.posix.isAbsolute(src)))
        throw new DockerfileError(`${src} is outside the build context`);
      const matched = glob(base, pattern).filter((rel) => from || !ignored(rel));
      if (matched.length === 0) throw new DockerfileError(`${src}: no such file in ${from ? `stage ${from.name}` : 'the build context'}`);
      sources.push(...matched);
    }
    const intoDir = destRaw.endsWith('/') || sources.length > 1;
    if (sources.length > 1 && !destRaw.endsWith('/')) throw new DockerfileError('with several sources the destination must end with /');
    const destHost = hostPath(s, dest);
    // The scratch directory is never part of the context, even when --out points inside the repo.
    const keep = (src: string) =>
      from !== undefined ||
      (src !== out && !src.startsWith(out + path.sep) && !ignored(path.relative(repo, src).split(path.sep).join('/')));
    for (const rel of sources) {
      const srcHost = path.join(base, rel);
      if (fs.statSync(srcHost).isDirectory()) {
        // Docker copies a directory's contents, not the directory itself.
        fs.mkdirSync(destHost, { recursive: true });
        for (const e of fs.readdirSync(srcHost)) copyTree(path.join(srcHost, e), path.join(destHost, e), keep);
      } else {
        const target =
          intoDir || (fs.existsSync(destHost) && fs.statSync(destHost).isDirectory()) ? path.join(destHost, path.basename(rel)) : destHost;
        fs.mkdirSync(path.dirname(target), { recursive: true });
        copyTree(srcHost, target, keep);
      }
    }
    log(`${where} ${sources.map((rel) => (from ? `/${rel}` : rel)).join(' ')} -> ${dest}${from ? ` (from stage ${from.name})` : ''}`);
  }

  async function run(s: Stage, command: string, where: string): Promise<void> {
    if (command.startsWith('[')) throw new DockerfileError('RUN in exec form is not supported: use the shell form');
    const absolute = absolutePathsIn(command);
    if (absolute.length > 0) {
      throw new DockerfileError(
        `refusing ${absolute.join(', ')}: RUN runs in the stage root's copy of WORKDIR here, so absolute paths (other than /dev/null) ` +
          'would act on this machine instead of the image; use a path relative to WORKDIR (set WORKDIR first)',
      );
    }
    // Image PATH entries that exist in the stage root come first (like /app/bin); the base image's
    // own directories (/usr/local/bin, ...) are what the local node and npm stand in for.
    const imagePath = (s.env.PATH ?? '')
      .split(':')
      .filter((dir) => dir.startsWith('/') && fs.existsSync(hostPath(s, dir)))
      .map((dir) => hostPath(s, dir));
    const kept = Object.fromEntries(HOST_ENV_KEPT.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k] as string]));
    const env = { ...kept, ...s.env, PATH: [...imagePath, process.env.PATH ?? ''].join(':') };
    const cwd = hostPath(s, s.workdir);
    log(`${where} ${command}`);
    const started = Date.now();
    const tail: string[] = [];
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn('bash', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
      const onData = (chunk: Buffer) => {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (line.trim() === '') continue;
          log(`  | ${line}`);
          tail.push(line);
          if (tail.length > 20) tail.shift();
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('error', reject);
      child.on('close', resolve);
    });
    if (code !== 0) throw new DockerfileError(`exited with ${code} after ${secs(Date.now() - started)}:\n${tail.join('\n')}`);
    log(`  (${secs(Date.now() - started)})`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string' }, repo: { type: 'string' } } });
  await buildImage({ ...(values.out ? { out: values.out } : {}), ...(values.repo ? { repo: values.repo } : {}) });
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`image-build: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
