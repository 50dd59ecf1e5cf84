import fc from 'fast-check';
import {
  liveness,
  naiveReadiness,
  type ReadinessInput,
  readiness,
  readinessInputOf,
  readinessReply,
  startup,
  startupInputOf,
  startupReply,
} from '../../src/core/health';

const base: ReadinessInput = {
  storageOpen: true,
  serving: true,
  draining: false,
  podsExisting: 3,
  expectedPods: 3,
  liveMembers: 3,
  quorumMembers: 2,
};

describe('two-phase readiness', () => {
  test('phase 1: while fewer pods exist than expected, a node is ready on local state alone', () => {
    const v = readiness({ ...base, podsExisting: 1, liveMembers: 1 });
    expect(v).toEqual({ ok: true, reason: expect.stringContaining('phase 1') });
    expect(v.reason).toContain('1/3 pods exist');
  });

  test('phase 2: once all pods exist, ready only with enough live members for quorum requests', () => {
    expect(readiness({ ...base, liveMembers: 1 })).toEqual({ ok: false, reason: expect.stringContaining('0 live peer(s)') });
    expect(readiness({ ...base, liveMembers: 2 }).ok).toBe(true);
    expect(readiness({ ...base, liveMembers: 3 }).ok).toBe(true);
  });

  test('without a pod count (static seeds, join) only phase 2 applies', () => {
    expect(readiness({ ...base, podsExisting: undefined, liveMembers: 1 }).ok).toBe(false);
    expect(readiness({ ...base, expectedPods: undefined, podsExisting: 1, liveMembers: 1 }).ok).toBe(false);
  });

  test('never ready while draining, with storage closed, or before the API serves — in either phase', () => {
    for (const podsExisting of [1, 3]) {
      expect(readiness({ ...base, podsExisting, draining: true }).reason).toContain('draining');
      expect(readiness({ ...base, podsExisting, storageOpen: false }).ok).toBe(false);
      expect(readiness({ ...base, podsExisting, serving: false }).ok).toBe(false);
    }
  });

  test('the naive rule (ready only with N-1 peers) fails pod 0 of a starting StatefulSet: the deadlock', () => {
    const pod0Alone = { ...base, podsExisting: 1, liveMembers: 1 };
    expect(naiveReadiness(pod0Alone, 3).ok).toBe(false);
    expect(readiness(pod0Alone).ok).toBe(true);
    expect(naiveReadiness({ ...base, liveMembers: 3 }, 3).ok).toBe(true);
  });
});

describe('startup and liveness', () => {
  test('started once storage is open, the API serves and the node has joined or found nobody to join', () => {
    const s = { storageOpen: true, serving: true, discoveryTried: false, knownMembers: 1 };
    expect(startup(s).ok).toBe(false);
    expect(startup({ ...s, discoveryTried: true }).ok).toBe(true);
    expect(startup({ ...s, knownMembers: 3 }).ok).toBe(true); // remembered from disk: already a member
    expect(startup({ ...s, discoveryTried: true, serving: false }).ok).toBe(false);
    expect(startup({ ...s, discoveryTried: true, storageOpen: false }).ok).toBe(false);
  });

  test('a pod whose discovery settings cannot be right never passes, whatever else holds, and says why', () => {
    const problem = "this pod's own DNS name does not exist (...): --headless-service (QUORUMKV_HEADLESS_SERVICE) ...";
    for (const s of [
      { storageOpen: true, serving: true, discoveryTried: true, knownMembers: 1, discoveryProblem: problem },
      { storageOpen: true, serving: true, discoveryTried: true, knownMembers: 3, discoveryProblem: problem, memberStatus: 'normal' },
    ]) {
      expect(startup(s)).toEqual({ ok: false, reason: `not started: ${problem}` });
    }
  });

  test('liveness fails only on a stalled event loop', () => {
    expect(liveness({ eventLoopDelayMs: 40 }).ok).toBe(true);
    expect(liveness({ eventLoopDelayMs: 6000 })).toEqual({ ok: false, reason: 'event loop stalled: 6000 ms delay (limit 5000 ms)' });
  });
});

describe('the /health/startup and /health/ready replies, written by the node and read by the probe', () => {
  const status = fc.option(fc.constantFrom('undecided', 'joining', 'normal', 'leaving', 'removed'), { nil: undefined });
  const count = fc.integer({ min: 0, max: 9 });
  const readinessInput = fc.record({
    storageOpen: fc.boolean(),
    serving: fc.boolean(),
    draining: fc.boolean(),
    podsExisting: fc.option(count, { nil: undefined }),
    expectedPods: fc.option(count, { nil: undefined }),
    liveMembers: count,
    quorumMembers: count,
    memberStatus: status,
    moveProgress: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
  });

  test('a readiness reply, through JSON, gives the probe the inputs and verdict the node had, under either rule', () => {
    fc.assert(
      fc.property(readinessInput, fc.integer({ min: 1, max: 5 }), (input, n) => {
        const reply = readinessReply(input, n);
        const { input: read, replicationFactor } = readinessInputOf(JSON.parse(JSON.stringify(reply)));
        expect(readiness(read)).toEqual({ ok: reply.ok, reason: reply.reason });
        expect(naiveReadiness(read, replicationFactor)).toEqual(naiveReadiness(input, n));
      }),
    );
  });

  test('a startup reply, through JSON, gives the probe the verdict the node had', () => {
    fc.assert(
      fc.property(
        fc.record({
          storageOpen: fc.boolean(),
          serving: fc.boolean(),
          discoveryTried: fc.boolean(),
          discoveryProblem: fc.option(fc.string(), { nil: undefined }),
          knownMembers: count,
          memberStatus: status,
        }),
        (input) => {
          const reply = startupReply(input);
          expect(startup(startupInputOf(JSON.parse(JSON.stringify(reply))))).toEqual({ ok: reply.ok, reason: reply.reason });
        },
      ),
    );
  });

  test('a reply with fields of the wrong type reads as not ready, not as ready', () => {
    const { input } = readinessInputOf({ storage_open: 'true', serving: 1, live_members: 'three', quorum_members: 2 });
    expect(readiness(input).ok).toBe(false);
  });
});
