// The API port with TLS on (--tls client|all): an https server that also answers a client speaking
// plain HTTP to it, with the JSON error every refusal has, instead of a reset connection. The first
// byte of a connection decides: 0x16 opens a TLS handshake and the connection goes to TLS as it
// is; anything else is told to use https and closed. The check is once per connection (clients
// keep theirs open), never per request.

import type { Server } from 'node:https';
import type { Socket } from 'node:net';

const TLS_HANDSHAKE = 0x16;

/** How long a connection may stay silent before its first byte; then it is closed. */
const FIRST_BYTE_TIMEOUT_MS = 10_000;

/** How long a refused plain-HTTP connection is read (and its input dropped) before it is closed. */
const LINGER_MS = 2_000;

export function refusePlaintext(server: Server, apiAddress: string): void {
  const tlsListeners = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    socket.setTimeout(FIRST_BYTE_TIMEOUT_MS, () => socket.destroy());
    socket.once('error', () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(chunk);
      if (chunk[0] === TLS_HANDSHAKE) {
        for (const l of tlsListeners) l.call(server, socket);
        return;
      }
      const body = JSON.stringify({
        error: { code: 'bad_request', message: `this port speaks HTTPS (--tls); use https://${apiAddress}` },
      });
      socket.end(
        `HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      // read and drop the rest (unread input would reset the connection before the client reads
      // the reply); reading also sees the client's close, so the connection ends and the server can
      socket.on('data', () => {});
      socket.resume();
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
    });
  });
}
