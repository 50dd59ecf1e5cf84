// The command line of `npm start`: its own options, every `quorumkv serve` flag for all nodes, and
// a clear refusal of anything else.

import { parseLauncherArgs } from '../../scripts/lib/launcher-args';

describe('npm start -- ...', () => {
  test('takes its own options and passes any serve flag to every node', () => {
    expect(parseLauncherArgs(['--nodes', '5', '--replication-factor', '2', '--log-level=debug', '--data', 'd'])).toEqual({
      nodes: 5,
      basePort: 8081,
      data: 'd',
      serveArgs: ['--replication-factor', '2', '--log-level', 'debug'],
      serveFlags: { replicationFactor: '2', logLevel: 'debug' },
    });
  });

  test('accepts the old spelling with a second "--", and a bare boolean flag', () => {
    expect(parseLauncherArgs(['--', '--sloppy-quorum', '--base-port', '9001']).serveArgs).toEqual(['--sloppy-quorum', 'true']);
    expect(parseLauncherArgs(['--', '--sloppy-quorum', '--base-port', '9001']).basePort).toBe(9001);
    expect(parseLauncherArgs(['--read-repair', 'false']).serveFlags).toEqual({ readRepair: 'false' });
  });

  test.each([
    [['--replication-factr', '2'], 'unknown option --replication-factr (did you mean --replication-factor?)'],
    [['--frobnicate'], 'unknown option --frobnicate'],
    [['--port', '9000'], '--port is set by the launcher for each node (use --base-port: node i listens on base-port + i - 1)'],
    [['--seeds', 'a:1'], '--seeds is set by the launcher for each node'],
    [['--nodes', 'three'], '--nodes must be a whole number from 1 to 15; got "three"'],
    [['--nodes'], '--nodes needs a value'],
    [['--replication-factor'], '--replication-factor needs a value <n>'],
    [['stray'], 'unexpected argument "stray"'],
  ])('%j is refused: %s', (argv, message) => {
    expect(() => parseLauncherArgs(argv)).toThrow(message);
  });
});
