// Scripted cluster changes that run alongside the workload and the faults (Simulation.runWith).
//
// `elastic`: the life of a StatefulSet that is scaled and repaired. 3 -> 5 (two fresh nodes join at
// once), 5 -> 3 (two of the first members are decommissioned at once), one member dies for good
// and is removed (removenode), a fresh one takes its place, and one member's volume is replaced
// (it comes back empty under its own id). After each step every running member must agree on one
// placement with no move under way; a step that does not finish is reported as a violation.

import type { Violation } from './checkers';
import type { SimNode, Simulation } from './simulation';

const SECOND = 1000;
/** A step that takes longer than this (virtual time) is stuck. */
const STEP_LIMIT_MS = 300 * SECOND;

function status(s: SimNode): string {
  return s.node ? s.node.memberStatus() : 'down';
}

export async function elasticSteps(sim: Simulation): Promise<Violation[]> {
  const stuck: Violation[] = [];
  const step = async (name: string, run: () => Promise<boolean>) => {
    sim.trace(`step ${name}`);
    const started = sim.scheduler.now;
    const done = await run();
    const agreed = done && (await sim.waitFor(() => sim.formed(), STEP_LIMIT_MS));
    sim.trace(
      `step ${name}: ${done ? 'done' : 'stuck'}, ${agreed ? 'agreed' : 'no agreement'} after ${(sim.scheduler.now - started).toFixed(0)} ms`,
    );
    if (!done || !agreed) {
      stuck.push({
        checker: 'stuck-move',
        message: `step "${name}" ${done ? 'finished but the members did not agree' : 'did not finish'} within ${STEP_LIMIT_MS} ms`,
        ops: [],
      });
    } else {
      // the move is over: every acknowledged write must be on W of its replicas in the new ring
      for (const v of sim.checkReplicationNow()) stuck.push({ ...v, message: `after "${name}": ${v.message}` });
    }
    return done && agreed;
  };
  const [n1, n2, n3] = sim.nodes as [SimNode, SimNode, SimNode];
  await sim.pauseFor(300);
  let n4: SimNode | undefined;
  let n5: SimNode | undefined;
  const up = await step('scale 3 -> 5', async () => {
    [n4, n5] = (await sim.scaleUp(2)) as [SimNode, SimNode];
    const joined = [n4, n5] as SimNode[];
    return sim.waitFor(() => joined.every((s) => status(s) === 'normal'), STEP_LIMIT_MS);
  });
  if (!up) return stuck;
  if (!(await step('scale 5 -> 3', async () => (await Promise.all([sim.decommission(n1), sim.decommission(n2)])).every(Boolean))))
    return stuck;
  if (
    !(await step('n4 dies, removenode', async () => {
      sim.kill(n4 as SimNode);
      return sim.removeNode(n4 as SimNode, STEP_LIMIT_MS);
    }))
  )
    return stuck;
  if (
    !(await step('a fresh node takes its place', async () => {
      const [n6] = (await sim.scaleUp(1)) as [SimNode];
      return sim.waitFor(() => status(n6) === 'normal', STEP_LIMIT_MS);
    }))
  )
    return stuck;
  await step('n3 loses its volume and comes back empty', async () => {
    sim.wipe(n3);
    await sim.boot(n3);
    return sim.waitFor(() => status(n3) === 'normal', STEP_LIMIT_MS);
  });
  void n5;
  return stuck;
}
