/**
 * A TCP proxy to a store's server, with the network faults store tests need:
 * - `pause()` / `resume()`: every byte, both ways, is held while paused, then sent in order;
 * - `freeze()`: the connections open then pass no byte any more, either way, and stay open (the
 *   network lost them); connections made later pass as before; `freezeAll()`: so are those made
 *   until `thaw()` (a path that accepts connections and loses their bytes);
 * - `cut()`: every connection is dropped, and new ones are refused;
 * - `holdNext(text)`: the next chunk a client sends that holds `text` (a statement's SQL, say) is
 *   held, with whatever that connection sends after it, until the release it answers is called.
 */
import { createConnection, createServer, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** `target` (its user, password and database) through the proxy. */
  url: string;
  pause(): void;
  resume(): void;
  freeze(): void;
  freezeAll(): void;
  thaw(): void;
  cut(): void;
  /** Resolves, once such a chunk is held, to the function that sends it on. */
  holdNext(text: string): Promise<() => void>;
  /** Drops every connection and stops listening. */
  close(): Promise<void>;
}

/** `url` with its port (and host) replaced by a local one: the same user, password and database. */
function throughPort(url: string | URL, port: number): string {
  const u = new URL(String(url));
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
}

export async function tcpProxy(target: URL): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const frozen = new Set<Socket>();
  const held: Array<() => void> = [];
  let paused = false;
  let freezingNew = false;
  let holdFor: { text: string; held: (release: () => void) => void } | undefined;
  /** Per client connection, its chunks held by `holdNext` (in order), while any are. */
  const heldFrom = new Map<Socket, Buffer[]>();
  const relay = (client: Socket, from: Socket, to: Socket) =>
    from.on('data', (chunk: Buffer) => {
      if (frozen.has(client)) return;
      const queue = from === client ? heldFrom.get(client) : undefined;
      if (queue !== undefined) {
        queue.push(chunk);
        return;
      }
      if (from === client && holdFor !== undefined && chunk.includes(holdFor.text)) {
        const { held: onHeld } = holdFor;
        holdFor = undefined;
        heldFrom.set(client, [chunk]);
        onHeld(() => {
          for (const c of heldFrom.get(client) ?? []) to.write(c);
          heldFrom.delete(client);
        });
        return;
      }
      if (paused) held.push(() => to.write(chunk));
      else to.write(chunk);
    });
  const server = createServer((client) => {
    const port = target.port || (target.protocol.startsWith('redis') ? '6379' : '5432');
    const upstream = createConnection(Number(port), target.hostname);
    if (freezingNew) frozen.add(client);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        // One side gone: so is the other, as over a real network path.
        if (!frozen.has(client)) {
          client.destroy();
          upstream.destroy();
        }
      });
    }
    relay(client, client, upstream);
    relay(client, upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: throughPort(target, port),
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      for (const send of held.splice(0)) send();
    },
    freeze() {
      for (const s of sockets) frozen.add(s);
    },
    freezeAll() {
      freezingNew = true;
      for (const s of sockets) frozen.add(s);
    },
    thaw() {
      freezingNew = false;
    },
    holdNext(text) {
      return new Promise((resolve) => {
        holdFor = { text, held: resolve };
      });
    },
    cut() {
      server.close();
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
