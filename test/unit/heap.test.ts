import { HEAP_SHARE_OF_LIMIT, heapFlags, heapSizeGiven, heapSizeMib, MEMORY_LIMIT_ENV, MIN_HEAP_MIB } from '../../src/cli/heap';

const MiB = 2 ** 20;

describe('the V8 heap from the container memory limit', () => {
  test.each([
    ['512Mi (the base manifest)', 512 * MiB, 384],
    ['256Mi (dev)', 256 * MiB, 192],
    ['4Gi (prod)', 4096 * MiB, 3072],
    ['an odd number of bytes rounds down', 1_000_000_000, 715],
  ])('%s gives 75%%', (_, bytes, mib) => {
    expect(heapSizeMib(String(bytes))).toBe(mib);
    expect(mib).toBe(Math.floor((bytes * HEAP_SHARE_OF_LIMIT) / MiB));
  });

  test('a limit that leaves too small a heap, or is not a number of bytes, is refused naming the variable', () => {
    expect(() => heapSizeMib(String(64 * MiB))).toThrow(
      `${MEMORY_LIMIT_ENV} 67108864 (64 MiB) leaves a heap of 48 MiB, under the ${MIN_HEAP_MIB} MiB`,
    );
    for (const bad of ['', '512Mi', '-1', '0', '1e9', '99999999999999999999'])
      expect(() => heapSizeMib(bad)).toThrow(`${MEMORY_LIMIT_ENV} must be the container's memory limit in bytes`);
  });

  test('serve runs again with the flag only when a limit is given and no heap size was chosen', () => {
    const env = { [MEMORY_LIMIT_ENV]: String(512 * MiB) };
    expect(heapFlags(env, [])).toEqual(['--max-old-space-size=384']);
    expect(heapFlags({}, [])).toBeUndefined();
    expect(heapFlags({ [MEMORY_LIMIT_ENV]: '' }, [])).toBeUndefined();
    // the second process has the flag: it does not start a third
    expect(heapFlags(env, ['--max-old-space-size=384'])).toBeUndefined();
    // an operator's own choice wins
    expect(heapFlags({ ...env, NODE_OPTIONS: '--enable-source-maps --max_old_space_size=1000' }, [])).toBeUndefined();
    expect(heapSizeGiven(['--max-old-space-size', '100'], undefined)).toBe(true);
    expect(heapSizeGiven(['--max-semi-space-size=16'], '--max-old-space-size-x')).toBe(false);
  });
});
