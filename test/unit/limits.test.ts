import fc from 'fast-check';
import { utf8ByteLength } from '../../src/core/hash';
import { keyProblem, MAX_VALUE_DEPTH, valueProblem, valueSizeBytes } from '../../src/core/limits';

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

  test('a value JSON cannot carry faithfully is named, whatever its shape; the rest pass', () => {
    /** `containers` arrays and objects, one inside the other, around a number. */
    const nest = (containers: number) => {
      let v: unknown = 1;
      for (let i = 0; i < containers; i++) v = i % 2 ? [v] : { a: v };
      return v;
    };
    expect(valueProblem(nest(MAX_VALUE_DEPTH))).toBeUndefined();
    expect(valueProblem(nest(MAX_VALUE_DEPTH + 1))).toBe(`the value nests deeper than ${MAX_VALUE_DEPTH} levels`);
    expect(valueProblem(nest(200_000))).toContain('nests deeper'); // iterative: no stack to overflow
    expect(valueProblem({ a: [1, JSON.parse('1e309')] })).toContain('too large for a double');
    expect(valueProblem(JSON.parse(`[${'9'.repeat(5000)}]`))).toContain('too large for a double');
    expect(valueProblem([0], '[1e-400]')).toContain('1e-400, too small for a double');
    expect(valueProblem(0, '-0.5e-330')).toContain('too small');
    expect(valueProblem({ s: 'not a number 1e-400' }, '{"s":"not a number 1e-400"}')).toBeUndefined();
    expect(valueProblem({ s: 'q"1e-400' }, '{"s":"q\\"1e-400"}')).toBeUndefined();
    expect(valueProblem([0, 0.5, -1e-300, 1e308], '[0, 0.5, -1e-300, 1e308, 0e-999]')).toBeUndefined();
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 20 }), (v) => {
        expect(valueProblem(v, JSON.stringify(v))).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });
});
