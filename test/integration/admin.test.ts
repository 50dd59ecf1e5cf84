// The admin routes on real processes: every /admin/* route refuses a request without the admin
// token (401, with a Bearer challenge) or with a wrong one (403: the cluster token is a wrong one
// too), changing nothing; the right token, either of a current,next pair, is let in. Loopback is
// trusted only when asked for, and a node with neither says which settings would open the routes.
// The CLI sends the token from QUORUMKV_ADMIN_TOKEN (or --admin-token).

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cliPath, type LocalNode } from '../../scripts/lib/local-cluster';
import { cleanupClusters, FAST_ARGS, startCluster } from '../helpers/cluster';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';

const run = promisify(execFile);

afterEach(cleanupClusters);

const ADMIN = 'adm-current-7f3a';
const NEXT = 'adm-next-91c2';
const CLUSTER = 'cs-internode-55d0';
/** Token-only admin, as in Kubernetes: loopback (where this test is) is not trusted. */
const TOKEN_ENV = { QUORUMKV_ADMIN_TOKEN: `${ADMIN},${NEXT}`, QUORUMKV_ADMIN_FROM_LOOPBACK: 'false', QUORUMKV_CLUSTER_SECRET: CLUSTER };

/** Every admin route, with a body that would act if it were let in. */
const ROUTES: Array<{ method: string; path: string; json?: unknown }> = [
  { method: 'POST', path: '/admin/drain' },
  { method: 'POST', path: '/admin/repair', json: {} },
  { method: 'GET', path: '/admin/repair' },
  { method: 'POST', path: '/admin/decommission' },
  { method: 'POST', path: '/admin/removenode', json: { id: 'n2', force: true } },
  { method: 'GET', path: '/admin/move' },
];

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function cli(args: string[], env: Record<string, string | undefined>): Promise<{ code: number; stdout: string; stderr: string }> {
  const { QUORUMKV_ADMIN_TOKEN: _inherited, ...base } = process.env;
  const merged = Object.fromEntries(Object.entries({ ...base, ...env }).filter(([, v]) => v !== undefined)) as Record<string, string>;
  try {
    const { stdout, stderr } = await run(process.execPath, [cliPath(), ...args], { env: merged, timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** What a refused request could have changed: draining, a repair pass, a move, the member list. */
async function state(n: LocalNode): Promise<unknown> {
  const ready = await http('GET', `${n.url}/health/ready`);
  const repair = await http('GET', `${n.url}/admin/repair`, { headers: bearer(ADMIN) });
  const move = await http('GET', `${n.url}/admin/move`, { headers: bearer(ADMIN) });
  const cluster = await http('GET', `${n.url}/cluster`);
  return {
    draining: ready.body.draining,
    repairStarted: repair.body.started_at,
    move: move.body,
    members: cluster.body.members.map((m: { id: string; status: string }) => `${m.id}:${m.status}`),
  };
}

test('every admin route: 401 without a token, 403 with a wrong one or the cluster token, nothing changed; either admin token is let in', async () => {
  // no background anti-entropy pass: a refused POST /admin/repair must be the only way one could start
  const c = await startCluster('127.29.1', { env: TOKEN_ENV, args: [...FAST_ARGS, '--anti-entropy-interval-ms', '3600000'] });
  const [n1, n2] = c.nodes as [LocalNode, LocalNode];
  const before = await state(n1);
  // (its own last move, if any, is the join that made it a member)
  expect(before).toMatchObject({ draining: false, repairStarted: null, move: { status: 'normal' } });
  expect((before as { move: { move: { kind: string } | null } }).move.move?.kind ?? 'none').not.toBe('leave');

  const refused: string[] = [];
  for (const r of ROUTES) {
    const url = `${n1.url}${r.path}`;
    const opts = r.json === undefined ? {} : { json: r.json };
    for (const [what, headers] of [
      ['no token', {}],
      ['another scheme', { authorization: `Basic ${Buffer.from(`admin:${ADMIN}`).toString('base64')}` }],
      ['the old cluster-token header', { 'x-quorumkv-cluster-token': CLUSTER }],
      ['a wrong token', bearer('adm-wrong')],
      ['the cluster token', bearer(CLUSTER)],
      ['the admin token with a character more', bearer(`${ADMIN}x`)],
    ] as Array<[string, Record<string, string>]>) {
      const res = await http(r.method, url, { ...opts, headers });
      const challenge = res.headers.get('www-authenticate');
      refused.push(`${r.method} ${r.path} ${what}: ${res.status} ${res.body?.error?.code}${challenge ? ` (${challenge})` : ''}`);
    }
  }
  const expected = ROUTES.flatMap((r) => [
    `${r.method} ${r.path} no token: 401 unauthorized (Bearer realm="quorumkv admin")`,
    `${r.method} ${r.path} another scheme: 401 unauthorized (Bearer realm="quorumkv admin")`,
    `${r.method} ${r.path} the old cluster-token header: 401 unauthorized (Bearer realm="quorumkv admin")`,
    `${r.method} ${r.path} a wrong token: 403 forbidden`,
    `${r.method} ${r.path} the cluster token: 403 forbidden`,
    `${r.method} ${r.path} the admin token with a character more: 403 forbidden`,
  ]);
  expect(refused).toEqual(expected);
  // 36 refusals were counted, and changed nothing
  const metrics = (await http('GET', `${n1.url}/metrics`)).text;
  expect(metrics).toContain('quorumkv_admin_refused_total{status="401"} 18');
  expect(metrics).toContain('quorumkv_admin_refused_total{status="403"} 18');
  expect(await state(n1)).toEqual(before);
  const refusal = await http('POST', `${n1.url}/admin/drain`);
  expect(refusal.body.error.message).toContain('Authorization: Bearer');
  expect(refusal.headers.get('content-type')).toMatch(/^application\/json/);

  // let in with the current token and with the next one (a rotation holds both)
  for (const token of [ADMIN, NEXT]) {
    expect((await http('GET', `${n1.url}/admin/move`, { headers: bearer(token) })).status).toBe(200);
    expect((await http('GET', `${n1.url}/admin/repair`, { headers: bearer(token) })).status).toBe(200);
  }
  expect((await http('POST', `${n1.url}/admin/repair`, { json: {}, headers: bearer(NEXT) })).status).toBe(202);
  // removenode of a live member: let in, then refused by the move itself (409), nothing removed
  const remove = await http('POST', `${n1.url}/admin/removenode`, { json: { id: 'n2' }, headers: bearer(ADMIN) });
  expect({ status: remove.status, message: remove.body.error?.message }).toEqual({
    status: 409,
    message: expect.stringContaining('is not down'),
  });
  expect((await http('POST', `${n1.url}/admin/drain`, { headers: bearer(ADMIN) })).body).toMatchObject({ draining: true });
  expect((await http('GET', `${n1.url}/health/ready`)).body.draining).toBe(true);
  const leave = await http('POST', `${n2.url}/admin/decommission`, { headers: bearer(NEXT) });
  expect(leave.status).toBe(202);
  expect((await http('GET', `${n2.url}/admin/move`, { headers: bearer(NEXT) })).body.move).toMatchObject({ kind: 'leave' });
}, 60_000);

test('the CLI sends QUORUMKV_ADMIN_TOKEN (or --admin-token) as a bearer token; without it the node says what is missing', async () => {
  const c = await startCluster('127.29.2', { env: TOKEN_ENV });
  const n1 = c.node('n1');
  // the env holds the node's list in the other order: the CLI sends its first token
  const withEnv = await cli(['repair', '--no-wait', '--url', n1.url], { QUORUMKV_ADMIN_TOKEN: `${NEXT},${ADMIN}` });
  expect(withEnv).toMatchObject({ code: 0, stdout: expect.stringContaining('repair started') });

  const without = await cli(['repair', '--no-wait', '--url', n1.url], {});
  expect(without.code).toBe(1);
  expect(without.stderr).toContain('the admin routes need Authorization: Bearer');
  const wrong = await cli(['decommission', '--no-wait', '--url', n1.url, '--admin-token', 'adm-wrong'], {});
  expect(wrong.code).toBe(1);
  expect(wrong.stderr).toContain('not an admin token of this node');
  const bad = await cli(['drain', '--url', n1.url], { QUORUMKV_ADMIN_TOKEN: 'adm-x,,adm-y' });
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('QUORUMKV_ADMIN_TOKEN');
  expect(bad.stderr).not.toContain('adm-x');
  // status shows the cluster without the token, and says why this node's own move is not shown
  const status = await cli(['status', '--url', n1.url], {});
  expect(status.code).toBe(0);
  expect(status.stdout).toContain('(its own move not shown: the admin routes need Authorization: Bearer');
  // none of the refusals above drained or moved anything
  expect((await http('GET', `${n1.url}/health/ready`)).body.draining).toBe(false);
  const own = (await http('GET', `${n1.url}/admin/move`, { headers: bearer(ADMIN) })).body;
  expect({ status: own.status, leaving: own.move?.kind === 'leave' }).toEqual({ status: 'normal', leaving: false });

  // removenode sends it too: let in, then refused by the move (n3 is alive)
  const remove = await cli(['removenode', 'n3', '--no-wait', '--url', n1.url], { QUORUMKV_ADMIN_TOKEN: NEXT });
  expect(remove.code).toBe(1);
  expect(remove.stderr).toContain('is not down');
  // prestop outside a pod (no POD_NAME) drains, with the token from the environment
  const prestop = await cli(['prestop', '--url', n1.url, '--wait-ms', '100'], { QUORUMKV_ADMIN_TOKEN: ADMIN, POD_NAME: undefined });
  expect(prestop).toMatchObject({ code: 0, stdout: expect.stringContaining('readiness fails from now on') });
  expect((await http('GET', `${n1.url}/health/ready`)).body.draining).toBe(true);
}, 60_000);

test('loopback is trusted only when asked for; with neither setting the admin routes are closed and say how to open them', async () => {
  const c = await startCluster('127.29.3', { nodes: 1, env: { QUORUMKV_ADMIN_FROM_LOOPBACK: 'false' } });
  const n = c.node('n1');
  for (const r of ROUTES) {
    const res = await http(r.method, `${n.url}${r.path}`, r.json === undefined ? {} : { json: r.json });
    expect({ route: r.path, status: res.status, code: res.body.error?.code }).toEqual({ route: r.path, status: 403, code: 'forbidden' });
    expect(res.body.error.message).toMatch(/disabled.*--admin-token \(QUORUMKV_ADMIN_TOKEN\).*--admin-from-loopback/);
  }
  // a token sent to a node that has none does not open anything either
  expect((await http('GET', `${n.url}/admin/move`, { headers: bearer(ADMIN) })).status).toBe(403);
  expect((await http('GET', `${n.url}/health/ready`)).body.draining).toBe(false);

  // the same node, restarted with the opt-in: loopback callers need no token
  await n.stop();
  n.spec = { ...n.spec, env: { ...n.spec.env, QUORUMKV_ADMIN_FROM_LOOPBACK: 'true' } };
  await n.start();
  await eventually(async () => expect((await http('GET', `${n.url}/admin/move`)).status).toBe(200));
  expect((await http('POST', `${n.url}/admin/drain`)).body).toMatchObject({ draining: true });
}, 60_000);
