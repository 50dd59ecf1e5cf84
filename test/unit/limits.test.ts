import fc from 'fast-check';
import { utf8ByteLength } from '../../src/core/hash';
import { keyProblem, valueSizeBytes } from '../../src/core/limits';

describe('limits', () => {
  test('UTF-8 length matches Buffer.byteLength for any well-formed string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (s) => {
        expect(utf8ByteLength(s)).toBe(Buffer.byteLength(s, 'utf8'));
      }),
      { numRuns: 2000 },
    );
  });

  test('keys are 1..1024 bytes of valid UTF-8', () => {
    expect(keyProblem('')).toBe('key must not be empty');
    expect(keyProblem('k'.repeat(1024))).toBeUndefined();
    expect(keyProblem('k'.repeat(1025))).toContain('1025 bytes');
    expect(keyProblem('😀'.repeat(256))).toBeUndefined(); // 4 bytes each
    expect(keyProblem(`${'😀'.repeat(256)}k`)).toContain('1025 bytes');
    expect(keyProblem('a\ud800b')).toContain('not valid UTF-8');
    expect(keyProblem('a/b c?d')).toBeUndefined();
  });

  test('a value counts as the bytes of its JSON', () => {
    expect(valueSizeBytes('ab')).toBe(4);
    expect(valueSizeBytes({ a: 1 })).toBe(7);
    expect(valueSizeBytes('€')).toBe(5);
  });
});
