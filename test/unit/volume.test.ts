// core/volume.ts: what a node does with the data directory a StatefulSet gives back to its ordinal.

import { type VolumeMeta, volumeDecision } from '../../src/core/volume';

const meta = (m: Partial<VolumeMeta>): VolumeMeta => ({ id: 'quorumkv-3', generation: 100, ...m }) as VolumeMeta;

describe('the data directory a node finds at start', () => {
  test('none: a fresh directory', () => {
    expect(volumeDecision(undefined, 'quorumkv-3')).toEqual({ kind: 'fresh' });
  });

  test.each(['normal', 'joining', 'leaving', 'undecided'] as const)(
    'a member that did not finish leaving (%s) comes back with its data',
    (status) => {
      expect(volumeDecision(meta({ status }), 'quorumkv-3')).toEqual({ kind: 'resume', status });
    },
  );

  test('a member whose decommission finished starts empty, and the reason says when it left and why that is safe', () => {
    const removedAtMs = Date.UTC(2026, 11, 2, 6, 30);
    const d = volumeDecision(meta({ status: 'removed', removedAtMs, removedBy: 'decommission' }), 'quorumkv-3');
    expect(d).toMatchObject({ kind: 'start-empty', leftBy: 'decommission', removedAtMs });
    expect(d.kind === 'start-empty' && d.reason).toMatch(
      /quorumkv-3 .*left the cluster on 2026-12-02T06:30:00.000Z: its decommission finished/,
    );
    expect(d.kind === 'start-empty' && d.reason).toMatch(/clearing it and joining the cluster as a new member/);
  });

  test('a member the cluster removed (removenode) starts empty too', () => {
    const d = volumeDecision(meta({ status: 'removed', removedAtMs: 5, removedBy: 'removenode' }), 'quorumkv-3');
    expect(d).toMatchObject({ kind: 'start-empty', leftBy: 'removenode' });
    expect(d.kind === 'start-empty' && d.reason).toMatch(/rebuilt its ranges from the other replicas/);
  });

  test('the directory of another node id is refused, whatever its status', () => {
    for (const status of ['normal', 'removed'] as const) {
      const d = volumeDecision(meta({ id: 'quorumkv-1', status, removedAtMs: 5, removedBy: 'decommission' }), 'quorumkv-3');
      expect(d).toEqual({ kind: 'refuse', reason: expect.stringMatching(/belongs to node "quorumkv-1", not "quorumkv-3"/) });
    }
  });
});
