// Tests run through @swc/jest (no type check: `npm run typecheck` does that, see TOOLCHAIN.md).
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }] },
  testTimeout: 60_000,
  // Integration tests start real processes: two workers on a 2-core machine.
  maxWorkers: 2,
  // Longest files first, also on a clean clone (test/sequencer.js says why).
  testSequencer: '<rootDir>/test/sequencer.js',
};
