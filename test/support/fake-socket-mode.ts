/**
 * A local fake of Slack's Socket Mode WebSocket endpoint (the URL `apps.connections.open` hands
 * out): it greets each connection with `hello`, answers pings, records what the app sends (its
 * envelope acks), and can ask every connection to reconnect as Slack does (`disconnect`).
 * Frames are written and read by hand (RFC 6455): text, ping, pong and close, no extensions.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** One frame from server to client (never masked). */
function frame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head =
    n < 126
      ? Buffer.from([0x80 | opcode, n])
      : n < 65_536
        ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 255])
        : Buffer.concat([Buffer.from([0x80 | opcode, 127]), bigLength(n)]);
  return Buffer.concat([head, payload]);
}

function bigLength(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

export class FakeSocketMode {
  #server: Server = createServer((_req, res) => {
    res.writeHead(426).end();
  });
  #sockets = new Set<Socket>();
  /** Every JSON message the app sent, in order. */
  readonly received: Array<Record<string, unknown>> = [];
  /** Connections opened so far. */
  opened = 0;
  /** While set, a new connection is never greeted with `hello` (a Slack that hangs). */
  silent = false;

  get url(): string {
    return `ws://127.0.0.1:${(this.#server.address() as AddressInfo).port}/link`;
  }

  /** Connections open now. */
  get open(): number {
    return this.#sockets.size;
  }

  async start(): Promise<this> {
    this.#server.on('upgrade', (req: IncomingMessage, socket: Socket) => this.#accept(req, socket));
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  /** Sends `message` to every open connection. */
  send(message: unknown): void {
    const data = frame(1, Buffer.from(JSON.stringify(message)));
    for (const s of this.#sockets) s.write(data);
  }

  /** Asks every connection to reconnect, as Slack does before it closes one, then closes them. */
  disconnectAll(reason = 'refresh_requested'): void {
    this.send({ type: 'disconnect', reason, debug_info: { host: 'fake' } });
    for (const s of this.#sockets) {
      s.end(frame(8, Buffer.from([0x03, 0xe8])));
      this.#sockets.delete(s);
    }
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(req: IncomingMessage, socket: Socket) {
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string') {
      socket.destroy();
      return;
    }
    const accept = createHash('sha1')
      .update(key + WS_GUID)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    this.#sockets.add(socket);
    this.opened++;
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => this.#sockets.delete(socket));
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const parsed = this.#readFrame(buffered);
        if (!parsed) break;
        buffered = buffered.subarray(parsed.size);
        if (parsed.opcode === 1)
          this.received.push(JSON.parse(parsed.payload.toString()) as Record<string, unknown>);
        else if (parsed.opcode === 9) socket.write(frame(10, parsed.payload));
        else if (parsed.opcode === 8) {
          this.#sockets.delete(socket);
          socket.end(frame(8, parsed.payload));
        }
      }
    });
    if (this.silent) return;
    socket.write(
      frame(
        1,
        Buffer.from(JSON.stringify({ type: 'hello', num_connections: 1, connection_info: { app_id: 'A1' } })),
      ),
    );
  }

  /** One client frame (always masked) at the start of `data`, or undefined when incomplete. */
  #readFrame(data: Buffer): { opcode: number; payload: Buffer; size: number } | undefined {
    if (data.length < 2) return undefined;
    const opcode = data[0]! & 0x0f;
    let length = data[1]! & 0x7f;
    let at = 2;
    if (length === 126) {
      if (data.length < 4) return undefined;
      length = data.readUInt16BE(2);
      at = 4;
    } else if (length === 127) {
      if (data.length < 10) return undefined;
      length = Number(data.readBigUInt64BE(2));
      at = 10;
    }
    const masked = (data[1]! & 0x80) !== 0;
    const mask = masked ? data.subarray(at, at + 4) : undefined;
    if (masked) at += 4;
    if (data.length < at + length) return undefined;
    const payload = Buffer.from(data.subarray(at, at + length));
    if (mask) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i % 4]!;
    return { opcode, payload, size: at + length };
  }
}

export const startFakeSocketMode = (): Promise<FakeSocketMode> => new FakeSocketMode().start();
