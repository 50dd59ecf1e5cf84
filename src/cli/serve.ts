// `quorumkv serve`: wires the real parts (LMDB store, the internode protocol's server and transport,
// system clock, pino, the HTTP API) around a Node and runs it until SIGTERM/SIGINT.

import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { createHandler } from '../api/app';
import { guardHttp, hostProblem, requestsInHand, sendError, trackRequest } from '../api/errors';
import { refusePlaintext } from '../api/tls-port';
import { TokenRegistry } from '../api/tokens';
import { clientTls, internodeTls, redacted, type ServeConfig } from '../config';
import { parseTokensFile } from '../core/client-access';
import { maxRequestFrameBytes, TUNING } from '../core/defaults';
import type { Logger } from '../core/log';
import { type Discovery, DnsDiscovery, JoinDiscovery, StatefulSetDiscovery, StaticDiscovery } from '../discovery';
import { createResolver } from '../discovery/resolver';
import { readBounded, watchFiles } from '../file-watch';
import { createLogger } from '../log';
import { Metrics } from '../metrics';
import { internodeAddress } from '../net/address';
import { beat, startIdlePoll } from '../net/idle-poll';
import { PeerServer } from '../net/peer-server';
import { PeerTransport } from '../net/peer-transport';
import { checkTlsMaterial, clientContext, readTlsMaterial, type TlsMaterial } from '../net/tls';
import { Node, type RepairConfig } from '../node/node';
import { SystemClock, systemRandom } from '../node/system';
import { LmdbStore } from '../storage/lmdb-store';

/** The peer-discovery provider the settings ask for. */
export function discoveryFor(c: ServeConfig): Discovery {
  const resolver = createResolver(c.dnsServer);
  switch (c.discovery) {
    case 'static':
      return new StaticDiscovery(c.seeds);
    case 'dns':
      return new DnsDiscovery({ name: c.dnsName as string, port: c.port, resolver });
    case 'statefulset':
      return new StatefulSetDiscovery({
        podName: c.nodeId,
        replicas: c.expectedReplicas as number,
        service: c.headlessService,
        namespace: c.namespace,
        clusterDomain: c.clusterDomain,
        port: c.port,
        resolver,
      });
    case 'join':
      return new JoinDiscovery({ url: c.join as string, resolver });
  }
}

/** The liveness probe reports the worst event-loop delay over windows of this length. */
const EVENT_LOOP_WINDOW_MS = 5_000;

/** The repair settings: flags where an operator has a reason to choose, the tuning table's values elsewhere. */
export function repairConfig(c: ServeConfig): RepairConfig {
  return {
    readRepair: c.readRepair,
    sloppyQuorum: c.sloppyQuorum,
    hints: { windowMs: c.hintWindowMs, maxPerTarget: c.maxHintsPerNode, deliveryRatePerSec: c.hintDeliveryRate, tickMs: TUNING.hintTickMs },
    antiEntropy: {
      intervalMs: c.antiEntropyIntervalMs,
      peerPauseMs: TUNING.antiEntropyPeerPauseMs,
      maxRecordsPerPass: TUNING.antiEntropyMaxRecordsPerPass,
    },
    tombstoneGraceMs: c.tombstoneGraceMs,
    compactionTickMs: TUNING.compactionTickMs,
  };
}

/**
 * Largest internode reply accepted from a peer that passed the handshake. Replies are bounded by
 * what they answer (a read: one value; a page: MAX_BATCH_BYTES and one record), except an
 * anti-entropy leaf, which carries the differing records of one tree leaf (a few keys).
 */
const MAX_REPLY_FRAME_BYTES = 256 * 2 ** 20;

/** How long shutdown waits for requests in flight before closing their connections. */
const DRAIN_TIMEOUT_MS = 10_000;

/**
 * Whether `pid` is a running quorumkv server. A pid file left by a killed process may name a pid
 * that is now something else (in a restarted container, pid 1 is always taken): on Linux the
 * command line says whether it is really us.
 */
function isRunningServer(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmdline.includes('serve') && cmdline.some((a) => a.includes('quorumkv') || a.endsWith('main.js'));
  } catch {
    return true; // no /proc: trust the pid
  }
}

/**
 * One process per data directory: LMDB itself allows several, but a replica's read-your-writes
 * overlay (see LmdbStore) is per process. A pid file left by a killed process is taken over.
 */
function lockDataDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'quorumkv.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          unlinkSync(file);
        } catch {}
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isRunningServer(pid)) {
        throw new Error(`data directory ${dir} is in use by process ${pid}; stop it, or remove ${file} if that process is not quorumkv`);
      }
      unlinkSync(file);
    }
  }
  throw new Error(`could not lock data directory ${dir}`);
}

const TOKENS_SETTING = '--tokens-file (QUORUMKV_TOKENS_FILE)';

/** The entries of a tokens file; throws with every problem (line numbers, never a token). */
function tokensFrom(text: Buffer, file: string) {
  const { entries, problems } = parseTokensFile(text.toString('utf8'));
  if (problems.length > 0) throw new Error(`${TOKENS_SETTING}: ${file}: ${problems.join('; ')}`);
  return entries;
}

/**
 * The tokens file, read now (a problem stops the start) and re-read when it changes: a file with
 * a problem is refused with a log line, and the tokens in use stay. Returns the stop function.
 */
function loadTokens(file: string, registry: TokenRegistry, log: Logger): () => void {
  const first = readBounded(file, TOKENS_SETTING);
  registry.setFileEntries(tokensFrom(first, file));
  log.info({ file, tokens: registry.counts() }, 'client authentication on: every route but /health* needs a bearer token');
  return watchFiles(
    [{ path: file, setting: TOKENS_SETTING }],
    [first],
    ([text]) => {
      registry.setFileEntries(tokensFrom(text as Buffer, file));
      log.info({ file, tokens: registry.counts() }, 'tokens file changed: new tokens in use');
    },
    (message) => log.error({ file }, `tokens file not applied, the tokens in use stay: ${message}`),
  );
}

export interface Running {
  node: Node;
  server: http.Server | https.Server;
  shutdown(reason: string): Promise<void>;
}

export async function serve(config: ServeConfig): Promise<Running> {
  const log = createLogger(config.logLevel, { node: config.nodeId });
  const unlock = lockDataDir(config.dataDir);
  // One message or none in hand (a client request, a call the internode server is handling): a
  // lone frame or commit-log write then goes at once instead of at the end of the event-loop turn
  // (src/net/flush.ts). The internode server is made further down.
  let peerCalls = () => 0;
  const alone = () => requestsInHand() + peerCalls() <= 1;
  // a record is at most a value with its key and version: the key limit is far under the room left
  const store = LmdbStore.open({ path: config.dataDir, maxRecordBytes: config.maxValueBytes + 64 * 1024, alone });
  if (store.replayedAtOpen > 0) log.info({ writes: store.replayedAtOpen }, 'replayed writes from the commit log');
  const metrics = new Metrics({ processMetrics: true });
  // What the heap may grow to: follows the container's memory limit in a pod (heap.ts).
  metrics.gauge(
    'quorumkv_heap_limit_bytes',
    'Largest size the V8 heap may grow to (--max-old-space-size and the young generation)',
    () => getHeapStatistics().heap_size_limit,
  );
  // the commit log: syncs, the writes they carried (their ratio is the group commit), LMDB's lag
  metrics.counterFrom('quorumkv_commit_log_syncs_total', 'Synced disk writes of the commit log', () => store.logStats().diskWrites);
  metrics.counterFrom('quorumkv_commit_log_records_total', 'Writes made durable by the commit log', () => store.logStats().framesWritten);
  metrics.gauge(
    'quorumkv_storage_unapplied_writes',
    'Writes durable in the commit log and not yet applied to LMDB',
    () => store.logStats().unapplied,
  );
  const distance = config.internodePort - config.port;
  // TLS: read and checked now (a problem stops the start), re-read when the files change (below).
  const tlsFiles = config.tls === 'off' ? undefined : { cert: config.tlsCert as string, key: config.tlsKey as string, ca: config.tlsCa };
  let tlsMaterial: TlsMaterial | undefined;
  if (tlsFiles) {
    tlsMaterial = readTlsMaterial(tlsFiles);
    const cert = checkTlsMaterial(tlsMaterial);
    log.info({ tls: config.tls, certificate: cert }, `TLS on: ${config.tls === 'all' ? 'client and internode (mutual)' : config.tls}`);
  }
  let dialContext = tlsMaterial && internodeTls(config.tls) ? clientContext(tlsMaterial) : undefined;
  const tokens = new TokenRegistry(config.adminToken ?? []);
  const stopTokens = config.tokensFile === undefined ? () => {} : loadTokens(config.tokensFile, tokens, log);
  const transport = new PeerTransport({
    nodeId: config.nodeId,
    clusterTokens: config.clusterSecret ?? [],
    peerAddress: (apiAddress) => internodeAddress(apiAddress, distance),
    log,
    metrics,
    alone,
    maxFrameBytes: MAX_REPLY_FRAME_BYTES,
    tls: dialContext === undefined ? undefined : () => dialContext as ReturnType<typeof clientContext>,
  });
  const clock = new SystemClock();
  const node = await Node.create(
    {
      id: config.nodeId,
      address: config.advertiseAddress,
      replicationFactor: config.replicationFactor,
      readQuorum: config.readQuorum,
      writeQuorum: config.writeQuorum,
      vnodes: config.vnodes,
      requestTimeoutMs: config.requestTimeoutMs,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      gossipIntervalMs: config.gossipIntervalMs,
      phiConvictThreshold: config.phiConvictThreshold,
      discoveryIntervalMs: config.discoveryIntervalMs,
      discoveryMaxIntervalMs: config.discoveryMaxIntervalMs,
      expectedMembers: config.expectedReplicas,
      maxGossipEntries: TUNING.maxGossipEntries,
      repair: repairConfig(config),
      // a node given one member's URL is joining that cluster: it never starts one of its own
      movement: { mustJoin: config.discovery === 'join' },
    },
    { clock, random: systemRandom(), transport, store, log, metrics, discovery: discoveryFor(config) },
  );

  // Event-loop delay for the liveness probe: the worst stall over the last window.
  const loopDelay = monitorEventLoopDelay({ resolution: 20 });
  loopDelay.enable();
  let lastWindowMaxMs = 0;
  const loopWindow = setInterval(() => {
    lastWindowMaxMs = loopDelay.max / 1e6;
    loopDelay.reset();
  }, EVENT_LOOP_WINDOW_MS);
  loopWindow.unref();

  const handler = createHandler({
    node,
    log,
    eventLoopDelayMs: () => Math.max(lastWindowMaxMs, loopDelay.max / 1e6),
    metrics,
    maxValueBytes: config.maxValueBytes,
    maxInflightRequests: config.maxInflightRequests,
    tokens,
    clientAuth: config.tokensFile !== undefined,
    adminFromLoopback: config.adminFromLoopback,
  });
  // The internode port opens first: a node never advertises an API its peers cannot reach.
  const peerServer = new PeerServer({
    nodeId: config.nodeId,
    clusterTokens: config.clusterSecret ?? [],
    handle: (msg) => node.handle(msg),
    log,
    metrics,
    maxFrameBytes: maxRequestFrameBytes(config.maxValueBytes),
    apiAddress: config.advertiseAddress,
    tls: internodeTls(config.tls) ? tlsMaterial : undefined,
    alone,
  });
  peerCalls = () => peerServer.callsInHand();
  await peerServer.listen(config.internodePort, config.host);

  // While shutting down, every response says Connection: close, so peers' and clients' keep-alive
  // connections end after the request they carry instead of holding the server open.
  let closing = false;
  // requireHostHeader: false: a request without Host is refused by the handler, with a JSON body.
  const idlePoll = startIdlePoll(config.idlePollUs);
  const listener: http.RequestListener = (req, res) => {
    trackRequest(req, res);
    beat(requestsInHand() > 1);
    if (closing) res.setHeader('connection', 'close');
    const noHost = hostProblem(req);
    if (noHost) {
      req.resume();
      sendError(req, res, 400, 'bad_request', noHost);
      return;
    }
    handler(req, res);
  };
  const server =
    tlsMaterial && clientTls(config.tls)
      ? https.createServer(
          // a TLS handshake that has not finished in 10 s is given up (Node's default is 120 s)
          { requireHostHeader: false, cert: tlsMaterial.cert, key: tlsMaterial.key, handshakeTimeout: 10_000 },
          listener,
        )
      : http.createServer({ requireHostHeader: false }, listener);
  if (server instanceof https.Server) refusePlaintext(server, config.advertiseAddress);
  guardHttp(server);
  const stopTls =
    tlsFiles === undefined
      ? () => {}
      : watchFiles(
          [
            { path: tlsFiles.cert, setting: '--tls-cert' },
            { path: tlsFiles.key, setting: '--tls-key' },
            ...(tlsFiles.ca === undefined ? [] : [{ path: tlsFiles.ca, setting: '--tls-ca' }]),
          ],
          [(tlsMaterial as TlsMaterial).cert, (tlsMaterial as TlsMaterial).key, ...(tlsMaterial?.ca ? [tlsMaterial.ca] : [])],
          ([cert, key, ca]) => {
            const m: TlsMaterial = { cert: cert as Buffer, key: key as Buffer, ca };
            const described = checkTlsMaterial(m);
            if (server instanceof https.Server) server.setSecureContext({ cert: m.cert, key: m.key });
            if (internodeTls(config.tls)) {
              peerServer.setTls(m);
              dialContext = clientContext(m);
            }
            log.info({ certificate: described }, 'TLS files changed: new connections use the new certificate, key and CA');
          },
          (message) => log.error({}, `TLS files not applied, the ones in use stay: ${message}`),
        );
  // every header reaches the handler (Node drops those after the 2,000th, even Transfer-Encoding;
  // their size is bounded anyway: 16 KiB)
  server.maxHeadersCount = 0;
  // Clients' idle keep-alive connections close after this (curl, load balancers and HTTP client
  // pools usually keep theirs for less, so the client closes first and no request races a close).
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = Math.max(30_000, config.requestTimeoutMs * 4);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  log.info(
    { config: redacted(config) },
    `quorumkv listening on ${config.host}:${config.port} (API) and ${config.host}:${config.internodePort} (internode), advertised as ${config.advertiseAddress}`,
  );
  if (config.adminFromLoopback) {
    log.warn(
      {},
      'admin routes (/admin/*) trust every caller on loopback (--admin-from-loopback): for local clusters; behind a service-mesh sidecar every client is on loopback',
    );
  } else if (!tokens.hasAdmin()) {
    log.warn(
      {},
      'admin routes (/admin/*) are disabled: set --admin-token (QUORUMKV_ADMIN_TOKEN), or an admin line in --tokens-file, to use drain, repair, decommission, removenode',
    );
  }
  if (config.idlePollUs > 0) {
    void idlePoll.niced.then((niced) =>
      niced
        ? log.info(
            { idlePollUs: config.idlePollUs },
            `idle polling: one CPU stays busy (nice 19) for ${config.idlePollUs} µs after each message`,
          )
        : log.warn(
            { idlePollUs: config.idlePollUs },
            'idle polling is off: its thread could not be given the lowest priority on its own (it must not compete with the node; Linux only)',
          ),
    );
  }
  node.setServing(true);
  node.start();

  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      log.info({ reason }, 'shutting down: no new requests, finishing those in flight');
      node.drain();
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // A connection that finishes its request becomes idle: close those as they appear.
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      const timer = setTimeout(() => {
        log.warn({ afterMs: DRAIN_TIMEOUT_MS }, 'requests still in flight: closing their connections');
        server.closeAllConnections();
      }, DRAIN_TIMEOUT_MS);
      await closed;
      clearInterval(sweep);
      clearTimeout(timer);
      node.setServing(false);
      node.stop();
      // Peers mark this node down now rather than after phi convicts it: a rolling restart
      // costs no request its deadline.
      await node.membership.announceShutdown();
      clearInterval(loopWindow);
      loopDelay.disable();
      stopTokens();
      stopTls();
      await idlePoll.stop();
      await peerServer.close();
      await transport.close();
      await store.close();
      unlock();
      log.info({}, 'stopped');
    })();
    return stopping;
  };
  // The cluster removed this node while this data directory was its volume: stop serving it.
  node.onStale((reason) => {
    log.fatal({}, `stopping: ${reason}`);
    void shutdown('stale data').finally(() => process.exit(STALE_DATA_EXIT_CODE));
  });
  return { node, server, shutdown };
}

/** Exit code of a node that refuses its data directory: the volume of a member that left. */
export const STALE_DATA_EXIT_CODE = 3;
