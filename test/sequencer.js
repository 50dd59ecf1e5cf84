// The order test files start in (jest.config.js), longest first, so that the two workers finish
// together. Jest orders by the times it recorded on an earlier run when it has them; a clean clone
// (CI) has none, and jest falls back to file size. Size puts the simulator's 1,000 seeds (a small
// file, two threads for about two minutes) nearly last, where it runs alone after the other worker
// has run out of files, instead of beside the integration tests, which leave a core half idle while
// they wait on their processes. The files below run first, longest first; every other file follows
// in jest's own order. Seconds: each file alone on this 2-core machine (`npx jest --maxWorkers=1`).

const path = require('node:path');
const Sequencer = require('@jest/test-sequencer').default;

const LONGEST_FIRST_SECONDS = {
  'test/k8s/statefulset.test.ts': 240,
  'test/sim/seeds.test.ts': 140,
  'test/integration/elastic.test.ts': 110,
  'test/integration/repair.test.ts': 100,
  'test/integration/quorum.test.ts': 85,
  'test/sim/elastic.test.ts': 40,
};

class LongestFirst extends Sequencer {
  sort(tests) {
    const seconds = (t) => LONGEST_FIRST_SECONDS[path.relative(t.context.config.rootDir, t.path).split(path.sep).join('/')];
    const known = tests.filter((t) => seconds(t) !== undefined).sort((a, b) => seconds(b) - seconds(a));
    return [...known, ...super.sort(tests.filter((t) => seconds(t) === undefined))];
  }
}

module.exports = LongestFirst;
