// The image, reproduced without a Docker engine (scripts/image-build.ts): it must hold production
// dependencies only, put `quorumkv` on PATH, and start a node from its own layout the way the
// container would (ENTRYPOINT + CMD through the image PATH), which the exec probes then reach.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { absolutePathsIn, buildImage, type ImageLayout } from '../../scripts/image-build';
import { eventually } from '../helpers/eventually';
import { get, http, put } from '../helpers/http';
import { type K8sObject, loadKustomization } from './manifests';

const HOST = '127.24.1.1';
const PORT = 7000;
const BASE = `http://${HOST}:${PORT}`;

let out: string;
let image: ImageLayout;
const buildLog: string[] = [];
let server: ChildProcess | undefined;
const serverOutput: string[] = [];

/** Host path of a path inside the image. */
const inImage = (p: string) => path.join(image.root, p);
const appModules = () => inImage(path.posix.join(image.workdir, 'node_modules'));

/**
 * The container's environment on this machine: the image's ENV, with PATH entries that exist in
 * the image mapped into its root, followed by this machine's PATH (the local node stands in for
 * the base image's).
 */
function containerEnv(extra: Record<string, string> = {}): Record<string, string> {
  const imagePath = (image.env.PATH ?? '')
    .split(':')
    .filter((dir) => dir.startsWith('/') && fs.existsSync(inImage(dir)))
    .map(inImage);
  return { ...image.env, PATH: [...imagePath, process.env.PATH ?? ''].join(':'), ...extra };
}

async function stopServer(): Promise<void> {
  const child = server;
  server = undefined;
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid, 'SIGTERM');
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 10_000).unref());
  if ((await Promise.race([exited, timer])) === 'timeout') {
    process.kill(child.pid, 'SIGKILL');
    await exited;
  }
}

describe('the image built from the Dockerfile', () => {
  beforeAll(async () => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'qkv-image-test-'));
    // Two npm installs (dev and production); the npm cache keeps them to seconds after the first.
    image = await buildImage({ out, log: (line) => buildLog.push(line) });
  }, 240_000);

  afterAll(async () => {
    await stopServer();
    if (out) fs.rmSync(out, { recursive: true, force: true });
  });

  test('the runtime stage holds the production dependencies and none of the toolchain', () => {
    const has = (name: string) => fs.existsSync(path.join(appModules(), name));
    expect({ express: has('express'), lmdb: has('lmdb'), undici: has('undici') }).toEqual({ express: true, lmdb: true, undici: true });
    expect({ typescript: has('typescript'), jest: has('jest'), '@swc': has('@swc') }).toEqual({
      typescript: false,
      jest: false,
      '@swc': false,
    });
    expect(image.nodeModules.devDependenciesPresent).toEqual([]);
    // lmdb's native binary comes prebuilt for this platform: nothing was compiled (node-gyp would leave lmdb/build).
    const prebuilt = fs.readdirSync(path.join(appModules(), '@lmdb'));
    expect(prebuilt).toContain(`lmdb-${process.platform}-${process.arch}`);
    expect(fs.existsSync(path.join(appModules(), 'lmdb', 'build'))).toBe(false);
    // The build stage's sources stay there: only the compiled JavaScript is copied over.
    expect(fs.existsSync(inImage('/app/src'))).toBe(false);
    expect(fs.existsSync(inImage('/app/dist/src/cli/main.js'))).toBe(true);
    // The dashboard's page, script and style ship beside the compiled API (the build copies them).
    for (const f of ['index.html', 'app.js', 'style.css'])
      expect([f, fs.existsSync(inImage(`/app/dist/src/api/dashboard/${f}`))]).toEqual([f, true]);
  });

  test('bin/quorumkv on the image PATH is the compiled CLI, and image.json says how to run it', () => {
    expect(image.entrypointHostPath).toBe(inImage('/app/bin/quorumkv'));
    expect(fs.realpathSync(inImage('/app/bin/quorumkv'))).toBe(fs.realpathSync(inImage('/app/dist/src/cli/main.js')));
    expect(fs.statSync(inImage('/app/dist/src/cli/main.js')).mode & 0o111).not.toBe(0);
    // A relative link: it still points at the CLI once the image is unpacked somewhere else.
    expect(fs.readlinkSync(inImage('/app/bin/quorumkv'))).toBe('../dist/src/cli/main.js');
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'image.json'), 'utf8'));
    expect(manifest).toEqual({
      root: image.root,
      workdir: '/app',
      env: {
        PATH: '/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        NODE_ENV: 'production',
        QUORUMKV_DATA_DIR: '/var/lib/quorumkv',
      },
      user: '10001:10001',
      entrypoint: ['quorumkv'],
      cmd: ['serve'],
      exposed: ['8080/tcp', '9080/tcp'],
      volumes: ['/var/lib/quorumkv'],
    });
    // The data directory belongs to the runtime user (a plain `docker run` volume is writable).
    expect(fs.statSync(inImage('/var/lib/quorumkv')).uid).toBe(10001);
  });

  test("quorumkv serve starts from the image's ENTRYPOINT + CMD, stores a key, and passes the manifest's liveness probe", async () => {
    const dataDir = path.join(out, 'data', 'img-0'); // no dot in the last part: lmdb would take it for a file name
    const env = containerEnv({
      QUORUMKV_HOST: HOST,
      QUORUMKV_PORT: String(PORT),
      QUORUMKV_DATA_DIR: dataDir,
      QUORUMKV_NODE_ID: 'img-0',
      // A one-node cluster: with the default N=3 a lone node cannot reach a write quorum.
      QUORUMKV_REPLICATION_FACTOR: '1',
      QUORUMKV_LOG_LEVEL: 'warn',
    });
    const [program, ...args] = [...image.entrypoint, ...image.cmd];
    const child = spawn(program as string, args, { cwd: inImage(image.workdir), env, stdio: ['ignore', 'pipe', 'pipe'] });
    server = child;
    for (const stream of [child.stdout, child.stderr]) stream?.on('data', (b: Buffer) => serverOutput.push(b.toString('utf8')));
    const why = () => `server output:\n${serverOutput.join('').slice(-3000)}\nbuild log tail:\n${buildLog.slice(-15).join('\n')}`;

    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`quorumkv serve exited with ${child.exitCode}\n${why()}`);
        const r = await http('GET', `${BASE}/health`, { timeoutMs: 1000 });
        expect(r.status).toBe(200);
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );

    const written = await put(BASE, 'image:greeting', { hello: 'from the image' });
    expect({ status: written.status, body: written.body }).toMatchObject({ status: 200, body: { key: 'image:greeting' } });
    const read = await get(BASE, 'image:greeting');
    expect({ status: read.status, value: read.body?.value }).toEqual({ status: 200, value: { hello: 'from the image' } });

    // The liveness probe exactly as k8s/base/statefulset.yaml declares it, through the image PATH; the
    // pod's node listens on the default URL, this one on its own address.
    const sts = loadKustomization().manifests.find((m) => m.object.kind === 'StatefulSet')?.object as K8sObject;
    const probe: string[] = sts.spec.template.spec.containers[0].livenessProbe.exec.command;
    const [probeProgram, ...probeArgs] = probe;
    const r = spawnSync(probeProgram as string, [...probeArgs, '--url', BASE], {
      cwd: inImage(image.workdir),
      env: containerEnv(),
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect({ command: probe, status: r.status, stdout: r.stdout, stderr: r.stderr }).toMatchObject({ command: probe, status: 0 });

    await stopServer();
    expect(child.exitCode ?? child.signalCode).toBe(0); // SIGTERM is a clean shutdown
  }, 60_000);
});

describe('the Dockerfile interpreter', () => {
  const contexts: string[] = [];
  afterAll(() => {
    for (const dir of contexts) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A build context of its own with these files; returns buildImage's promise. */
  function build(files: Record<string, string>): Promise<ImageLayout> {
    const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'qkv-image-ctx-'));
    contexts.push(repo);
    for (const [name, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(repo, name)), { recursive: true });
      fs.writeFileSync(path.join(repo, name), text);
    }
    return buildImage({ repo, out: path.join(repo, '.out'), log: () => {} });
  }

  test('RUN refuses absolute paths, which would act on this machine rather than the stage root', async () => {
    expect(absolutePathsIn('chmod +x dist/src/cli/main.js && mkdir -p bin && ln -s ../dist/src/cli/main.js bin/quorumkv')).toEqual([]);
    expect(absolutePathsIn('npm install >/dev/null 2>&1 && curl https://example.org/x')).toEqual([]);
    expect(absolutePathsIn('cp a /etc/x; PATH=$PATH:/opt/bin; cat ~/.npmrc; cd "/root"')).toEqual([
      '/etc/x',
      '/opt/bin',
      '~/.npmrc',
      '/root',
    ]);
    await expect(build({ Dockerfile: 'FROM node:20-bookworm-slim AS x\nWORKDIR /app\nRUN touch /tmp/escaped\n' })).rejects.toThrow(
      /Dockerfile:3 RUN: refusing \/tmp\/escaped/,
    );
  });

  test('COPY honours .dockerignore and copies the contents of a directory; ENV expands; ENTRYPOINT drops the base CMD', async () => {
    const layout = await build({
      Dockerfile: [
        'FROM node:20-bookworm-slim AS a',
        'WORKDIR /w',
        'COPY lib lib',
        'COPY *.txt ./',
        'RUN echo built > out.txt',
        'FROM node:20-bookworm-slim AS b',
        'COPY --from=a /w/out.txt /srv/',
        'ENV A=1 PATH="/srv/bin:$PATH"',
        'ENTRYPOINT ["tool"]',
        'WORKDIR /ctx',
        'COPY . .',
        '',
      ].join('\n'),
      '.dockerignore': 'node_modules\nlib/secret.txt\n',
      'lib/x.js': 'x',
      'lib/secret.txt': 'no',
      'node_modules/y/index.js': 'y',
      'one.txt': '1',
      'two.txt': '2',
    });
    const a = path.join(layout.out, 'stages', 'a', 'w');
    expect(fs.readdirSync(a).sort()).toEqual(['lib', 'one.txt', 'out.txt', 'two.txt']);
    expect(fs.readdirSync(path.join(a, 'lib'))).toEqual(['x.js']);
    expect(fs.readFileSync(path.join(layout.root, 'srv', 'out.txt'), 'utf8')).toBe('built\n');
    // The whole context, less the scratch directory (.out, inside it here).
    expect(fs.readdirSync(path.join(layout.root, 'ctx')).sort()).toEqual(['.dockerignore', 'Dockerfile', 'lib', 'one.txt', 'two.txt']);
    expect(layout.env).toEqual({ A: '1', PATH: '/srv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' });
    expect({ entrypoint: layout.entrypoint, cmd: layout.cmd }).toEqual({ entrypoint: ['tool'], cmd: [] });
  });

  test('an instruction it does not know stops the build with the line', async () => {
    await expect(build({ Dockerfile: 'FROM node:20-bookworm-slim\nHEALTHCHECK CMD true\n' })).rejects.toThrow(
      /Dockerfile:2 HEALTHCHECK: not supported/,
    );
  });
});
