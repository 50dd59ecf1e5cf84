import { quorumOf, requiredReplicas, writeOutcome } from '../../src/core/quorum';

describe('quorum rules', () => {
  test('a quorum is a strict majority', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map(quorumOf)).toEqual([1, 2, 2, 3, 3, 4, 4]);
  });

  test('a write decides as soon as the outcome is certain', () => {
    // n=3, w=2
    expect(writeOutcome(0, 0, 3, 2)).toBe('pending');
    expect(writeOutcome(1, 0, 3, 2)).toBe('pending');
    expect(writeOutcome(2, 0, 3, 2)).toBe('ok');
    expect(writeOutcome(1, 1, 3, 2)).toBe('pending');
    expect(writeOutcome(0, 2, 3, 2)).toBe('failed');
    // all: one failure is enough to fail
    expect(writeOutcome(2, 1, 3, 3)).toBe('failed');
    // enough acks win even if others failed
    expect(writeOutcome(2, 1, 3, 2)).toBe('ok');
  });

  test('consistency levels and explicit counts resolve against N', () => {
    const n = 3;
    expect(requiredReplicas('read', {}, n, 2)).toEqual({ required: 2 });
    expect(requiredReplicas('read', { consistency: 'one' }, n, 2)).toEqual({ required: 1 });
    expect(requiredReplicas('write', { consistency: 'quorum' }, n, 1)).toEqual({ required: 2 });
    expect(requiredReplicas('write', { consistency: 'all' }, n, 2)).toEqual({ required: 3 });
    expect(requiredReplicas('read', { r: '3' }, n, 2)).toEqual({ required: 3 });
    expect(requiredReplicas('write', { w: '1' }, n, 2)).toEqual({ required: 1 });
  });

  test.each([
    ['read', { consistency: 'bogus' }, 'consistency must be one of one, quorum, all; got "bogus"'],
    ['read', { r: '5' }, 'r must be an integer from 1 to 3 (the replication factor); got "5"'],
    ['read', { r: '0' }, 'r must be an integer from 1 to 3'],
    ['read', { r: '1.5' }, 'r must be an integer'],
    ['read', { r: '' }, 'r must be an integer'],
    ['write', { w: '-1' }, 'w must be an integer'],
    ['write', { r: '2' }, 'r applies to reads'],
    ['read', { w: '2' }, 'w applies to writes'],
    ['write', { consistency: 'all', w: '2' }, 'either consistency or w'],
  ] as const)('%s with %j is refused: %s', (op, params, message) => {
    const r = requiredReplicas(op, params, 3, 2);
    expect('error' in r && r.error).toContain(message);
  });
});
