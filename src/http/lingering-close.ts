import type { IncomingMessage } from 'node:http';

/**
 * Closes the connection of an answer sent while the request's body is still coming (a 413, or a
 * refusal of a request that asked for `100 Continue` and sends its body all the same) in
 * stages, as RFC 9112 §9.6 advises: the answer goes out with the end of the service's side, then
 * what the client still sends is thrown away until it closes its side, the body ends or `waitMs`
 * pass, or, with `idleMs`, nothing came for that long (the reader of the body, `readBody`, also
 * cuts off a client that keeps sending far past the limit). Call it before the answer, which must
 * say `Connection: close`.
 *
 * Node destroys the socket of a `Connection: close` answer once the answer is written out; with
 * body still arriving, the kernel then resets the connection, and the reset can reach the client
 * before it has read the answer (curl: "Connection reset by peer").
 */
export function lingeringClose(req: IncomingMessage, waitMs: number, idleMs?: number): void {
  const socket = req.socket;
  const destroySoon = socket.destroySoon;
  // Node calls this once the `Connection: close` answer is written out.
  socket.destroySoon = () => {
    if (req.complete || req.destroyed) {
      destroySoon.call(socket);
      return;
    }
    let idle: ReturnType<typeof setTimeout> | undefined;
    const close = () => {
      clearTimeout(timer);
      clearTimeout(idle);
      req.off('end', close);
      req.off('data', rearm);
      socket.destroy();
    };
    // With `idleMs`, a client that sends nothing for that long is taken to send no more.
    const rearm = () => {
      clearTimeout(idle);
      idle = setTimeout(close, idleMs);
    };
    const timer = setTimeout(close, waitMs);
    req.once('end', close);
    if (idleMs !== undefined) {
      req.on('data', rearm);
      rearm();
    }
    socket.once('close', () => {
      clearTimeout(timer);
      clearTimeout(idle);
    });
    socket.end();
    // Read on: Node's parser hands the rest to the request, which `readBody` drains.
    req.resume();
  };
}
