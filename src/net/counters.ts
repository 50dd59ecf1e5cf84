// The internode counters, shared by the transport (calls this node makes: direction "out") and the
// server (calls it answers: direction "in"), registered once per registry. Bound once per series:
// they are incremented for every frame.

import type { Counter, Metrics } from '../metrics';

export interface InternodeCounters {
  framesSent: { inc(by?: number): void };
  framesReceived: { inc(by?: number): void };
  socketWrites: { inc(by?: number): void };
  opened: { inc(by?: number): void };
}

interface Families {
  framesSent: Counter;
  framesReceived: Counter;
  socketWrites: Counter;
  opened: Counter;
  /** Who can tell how many connections it has open, by direction. */
  open: Array<{ direction: 'in' | 'out'; count: () => number }>;
}

const registered = new WeakMap<Metrics, Families>();

const noop = { inc() {} };

function families(metrics: Metrics): Families {
  const known = registered.get(metrics);
  if (known) return known;
  const f: Families = {
    framesSent: metrics.counter(
      'quorumkv_internode_frames_sent_total',
      'Internode frames sent (requests out, replies in), by direction of the calls',
      ['direction'],
    ),
    framesReceived: metrics.counter('quorumkv_internode_frames_received_total', 'Internode frames received, by direction of the calls', [
      'direction',
    ]),
    socketWrites: metrics.counter(
      'quorumkv_internode_socket_writes_total',
      'Socket writes carrying internode frames (the frames of one event-loop turn leave in one write), by direction of the calls',
      ['direction'],
    ),
    opened: metrics.counter(
      'quorumkv_internode_connections_opened_total',
      'Internode connections that completed the handshake, by direction',
      ['direction'],
    ),
    open: [],
  };
  metrics.gauge(
    'quorumkv_internode_connections',
    'Internode connections open, by direction',
    () =>
      (['in', 'out'] as const).map((d) => [{ direction: d }, f.open.filter((s) => s.direction === d).reduce((a, s) => a + s.count(), 0)]),
    ['direction'],
  );
  registered.set(metrics, f);
  return f;
}

export function internodeCounters(metrics: Metrics | undefined, direction: 'in' | 'out', openConnections: () => number): InternodeCounters {
  if (metrics === undefined) return { framesSent: noop, framesReceived: noop, socketWrites: noop, opened: noop };
  const f = families(metrics);
  f.open.push({ direction, count: openConnections });
  return {
    framesSent: f.framesSent.child({ direction }),
    framesReceived: f.framesReceived.child({ direction }),
    socketWrites: f.socketWrites.child({ direction }),
    opened: f.opened.child({ direction }),
  };
}
