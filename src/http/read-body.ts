import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform } from 'node:stream';
import {
  constants,
  createBrotliDecompress,
  createGunzip,
  createInflate,
  createInflateRaw,
  createZstdDecompress,
} from 'node:zlib';
import { HttpError } from './http-error.ts';

/** The request went away before its body was complete: nobody is left to answer. */
export class ClientGoneError extends Error {
  constructor() {
    super('client closed the connection before the request body was complete');
    this.name = 'ClientGoneError';
  }
}

export type BodyCoding = 'gzip' | 'deflate' | 'br' | 'zstd';
/** The codings of a body, in the order the sender applied them; empty for a body sent as is. */
export type BodyEncoding = readonly BodyCoding[];

const NO_CODING: BodyEncoding = Object.freeze([]);

/** Most codings one body may have been compressed with (a sender stacks at most two). */
const MAX_CODINGS = 3;

const CODINGS: Readonly<Record<string, BodyCoding | 'identity'>> = {
  identity: 'identity',
  gzip: 'gzip',
  'x-gzip': 'gzip',
  deflate: 'deflate',
  br: 'br',
  zstd: 'zstd',
};

/**
 * Reads `Content-Encoding`: a list of the codings applied, in order (RFC 9110: `gzip, br` was
 * gzipped, then compressed with Brotli). Throws 415 for a coding the service does not decode, or
 * more than `MAX_CODINGS` of them.
 */
export function bodyEncoding(req: IncomingMessage): BodyEncoding {
  const raw = (req.headers['content-encoding'] ?? '').trim().toLowerCase();
  if (raw === '' || raw === 'identity') return NO_CODING;
  const codings: BodyCoding[] = [];
  for (const name of raw.split(',')) {
    const coding = CODINGS[name.trim()];
    if (coding === undefined) {
      throw new HttpError(
        415,
        'unsupported_media_type',
        `Content-Encoding ${JSON.stringify(raw.slice(0, 60))} is not supported: send gzip, deflate, br, zstd or an uncompressed body`,
      );
    }
    if (coding !== 'identity') codings.push(coding);
  }
  if (codings.length > MAX_CODINGS) {
    throw new HttpError(
      415,
      'unsupported_media_type',
      `Content-Encoding lists ${codings.length} codings; at most ${MAX_CODINGS} are decoded: compress the body once`,
    );
  }
  return codings;
}

/**
 * Largest zstd window a body may ask for (2^24 bytes, 16 MiB, as Brotli's largest): the window
 * is what a decoder allocates, whatever the body's size, and a sender compressing a stream of
 * unknown length at the usual levels uses 2^21 to 2^23. A frame asking for more is refused (400).
 */
const ZSTD_WINDOW_LOG_MAX = 24;

function decoderFor(coding: BodyCoding): Transform {
  switch (coding) {
    case 'gzip':
      return createGunzip();
    case 'deflate':
      return new DeflateDecoder();
    case 'br':
      return createBrotliDecompress();
    case 'zstd':
      return createZstdDecompress({ params: { [constants.ZSTD_d_windowLogMax]: ZSTD_WINDOW_LOG_MAX } });
  }
}

/**
 * Whether a body labelled `deflate` starts with the zlib header that RFC 9110's deflate coding
 * has (a compression method of 8, a window of at most 32 KiB, and a check that makes the first two
 * bytes a multiple of 31), rather than bare deflate data.
 */
const isZlibHeader = (a: number, b: number): boolean =>
  (a & 0x0f) === 8 && a >> 4 <= 7 && ((a << 8) | b) % 31 === 0;

/**
 * `deflate` as senders write it: the zlib stream the coding is defined as, or the bare deflate
 * data that some libraries send under the same name (.NET's DeflateStream, among others). The
 * first two bytes tell which; the decoder is then one of Node's, behind this one.
 */
class DeflateDecoder extends Transform {
  #inner: Transform | undefined;
  #head: Buffer | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.#inner === undefined) {
      const head = this.#head ? Buffer.concat([this.#head, chunk]) : chunk;
      if (head.length < 2) {
        this.#head = head;
        done();
        return;
      }
      this.#head = undefined;
      this.#start(isZlibHeader(head[0]!, head[1]!) ? createInflate() : createInflateRaw());
      chunk = head;
    }
    if (this.#inner!.write(chunk)) done();
    else this.#inner!.once('drain', () => done());
  }

  override _flush(done: (error?: Error | null) => void): void {
    // A body of one byte: too short for either form, which the zlib decoder says.
    if (this.#inner === undefined) this.#start(createInflate(), this.#head);
    this.#inner!.once('end', () => done());
    this.#inner!.end();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.#inner?.destroy();
    done(error);
  }

  #start(inner: Transform, first?: Buffer): void {
    this.#inner = inner;
    inner.on('data', (data: Buffer) => this.push(data));
    inner.on('error', (error) => this.destroy(error));
    if (first) inner.write(first);
  }
}

const tooLarge = (maxBytes: number, what: string) =>
  new HttpError(
    413,
    'payload_too_large',
    `${what} is larger than INGEST_MAX_BYTES (${maxBytes} bytes): split it into smaller requests`,
    { headers: { connection: 'close' }, details: { maxBytes } },
  );

/**
 * The 413 of a body whose declared `Content-Length` is over the limit, known before any of it is
 * read (the compressed size can never legitimately exceed the decompressed limit either).
 */
export function declaredTooLarge(req: IncomingMessage, maxBytes: number): HttpError | undefined {
  const declared = Number(req.headers['content-length']);
  return Number.isFinite(declared) && declared > maxBytes
    ? tooLarge(maxBytes, `the request body (Content-Length ${declared})`)
    : undefined;
}

/** Node's test of an `Expect: 100-continue` request (HTTP/1.1 only), which then waits for a `100`. */
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

/** The answers whose `100 Continue` was sent. */
const continued = new WeakSet<ServerResponse>();

/**
 * Tells a client that waits for `100 Continue` to send its body (once). The server lets the
 * handlers do it (`checkContinue`), so that a request refused on its headers alone is answered
 * before the client uploads anything.
 */
export function askForBody(req: IncomingMessage, res: ServerResponse): void {
  if (!bodyUnasked(req, res)) return;
  continued.add(res);
  res.writeContinue();
}

/** True when the client waits for a `100 Continue` that was not sent: it may never send its body. */
export function bodyUnasked(req: IncomingMessage, res: ServerResponse): boolean {
  return req.httpVersion === '1.1' && CONTINUE.test(req.headers.expect ?? '') && !continued.has(res);
}

/**
 * Reads the request body, decompressing as it streams. The limit is counted on the decompressed
 * bytes, and decompression stops as soon as it is passed, so a small compressed body that would
 * inflate to gigabytes (a "zip bomb") costs at most `maxBytes` of memory and that much inflating.
 * Rejects with a 413 or 400 `HttpError`, or `ClientGoneError` when the client disconnects; with
 * `deadlineMs`, with a 408 when the body is not complete that long after the read began (an upload
 * that stalls must not hold what the caller reserved for it).
 */
export function readBody(
  req: IncomingMessage,
  maxBytes: number,
  encoding: BodyEncoding,
  deadlineMs?: number,
): Promise<Buffer> {
  const oversized = declaredTooLarge(req, maxBytes);
  if (oversized) {
    drain(req, maxBytes);
    return Promise.reject(oversized);
  }
  // The client left while the request waited (for a slot of the ingest limiter, say): Node
  // destroyed the request, its body can no longer be read and no event will come. Waiting would
  // hold the caller (and its limiter slot) forever.
  if (req.destroyed) return Promise.reject(new ClientGoneError());
  // The last coding applied is undone first; each decoder feeds the next, with backpressure.
  const decoders = encoding.length === 0 ? [] : encoding.toReversed().map(decoderFor);
  for (let i = 1; i < decoders.length; i++) decoders[i - 1]!.pipe(decoders[i]!);
  const decoder = decoders[0];
  const decoded = decoders.at(-1);

  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let rawSize = 0;
    let settled = false;
    const timer =
      deadlineMs === undefined
        ? undefined
        : setTimeout(
            () =>
              fail(
                new HttpError(
                  408,
                  'body_timeout',
                  `the request body did not arrive within ${Math.round(deadlineMs / 1000)} s (${rawSize || size} bytes came): send it faster or in smaller requests`,
                  { headers: { connection: 'close' } },
                ),
              ),
            deadlineMs,
          );

    // What each decoder but the last hands on is counted too: a coding inside another can inflate
    // to data that the next one turns into nothing (empty deflate blocks, gzip headers), which the
    // limit on the decoded body alone would leave inflating far past it.
    const layerCounters = decoders.slice(0, -1).map((d) => {
      let layer = 0;
      const count = (chunk: Buffer) => {
        layer += chunk.length;
        if (layer > maxBytes && !settled) fail(tooLarge(maxBytes, 'the decompressed request body'));
      };
      d.on('data', count);
      return [d, count] as const;
    });
    const cleanup = () => {
      clearTimeout(timer);
      for (const [d, count] of layerCounters) d.off('data', count);
      req.off('data', onRawData);
      req.off('end', onRawEnd);
      req.off('error', onError);
      req.off('close', onClose);
      decoded?.off('data', onData);
      decoded?.off('end', onEnd);
      for (const d of decoders) d.destroy();
    };
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      cleanup();
      if (!req.complete && !req.destroyed) drain(req, maxBytes);
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > maxBytes) {
        fail(
          tooLarge(maxBytes, decoder === undefined ? 'the request body' : 'the decompressed request body'),
        );
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      if (settled) return;
      settled = true;
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onRawData = (chunk: Buffer) => {
      if (!decoder) {
        onData(chunk);
        return;
      }
      rawSize += chunk.length;
      if (rawSize > maxBytes) {
        fail(tooLarge(maxBytes, 'the compressed request body'));
        return;
      }
      // Respect the decoder's backpressure so that inflating never runs far ahead of counting.
      if (!decoder.write(chunk)) {
        req.pause();
        decoder.once('drain', () => req.resume());
      }
    };
    const onRawEnd = () => {
      if (decoder) decoder.end();
      else onEnd();
    };
    // A request's only errors are its connection's ('aborted', ECONNRESET): the sender is gone.
    const onError = () => fail(new ClientGoneError());
    const onClose = () => {
      // Also a complete request destroyed before its buffered body was read out: it never ends.
      if (!req.complete || !req.readableEnded) fail(new ClientGoneError());
    };

    if (decoded) {
      decoded.on('data', onData);
      decoded.on('end', onEnd);
    }
    decoders.forEach((d, i) => {
      d.on('error', (err: Error & { code?: string }) =>
        fail(
          new HttpError(
            400,
            'bad_request',
            `the body is not valid ${encoding.at(-1 - i)} data (${err.code ?? err.message}), although Content-Encoding says so`,
          ),
        ),
      );
    });
    req.on('data', onRawData);
    req.on('end', onRawEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/**
 * Discards the rest of a refused body so that the client can read the answer; a client that keeps
 * sending far past the limit is disconnected.
 */
function drain(req: IncomingMessage, maxBytes: number) {
  let discarded = 0;
  const onData = (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > 16 * maxBytes) req.destroy();
  };
  req.on('data', onData);
  req.once('end', () => req.off('data', onData));
  req.resume();
}
