/**
 * Writes small MaxMind DB files (the format of GeoLite2, GeoIP2 and DB-IP Lite databases) for
 * tests: an IPv6 search tree (IPv4 networks live under ::/96, as in the real databases) with
 * 24-bit records, a data section, and the metadata. Written from the format's specification
 * (https://maxmind.github.io/MaxMind-DB/), only as far as these tests need: maps, UTF-8 strings,
 * unsigned integers and arrays.
 */
import { writeFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';

type Value = string | number | Value[] | { [key: string]: Value };

const TYPE = { string: 2, uint16: 5, uint32: 6, map: 7, uint64: 9, array: 11 } as const;

/** A field's control bytes: 3 type bits (extended types in a second byte) and the size. */
function control(type: number, size: number): Buffer {
  const head: number[] = [];
  let sizeBits: number;
  const tail: number[] = [];
  if (size < 29) sizeBits = size;
  else if (size < 29 + 256) {
    sizeBits = 29;
    tail.push(size - 29);
  } else {
    sizeBits = 30;
    const rest = size - 285;
    tail.push(rest >> 8, rest & 0xff);
  }
  if (type <= 7) head.push((type << 5) | sizeBits);
  else head.push(sizeBits, type - 7);
  return Buffer.from([...head, ...tail]);
}

function unsigned(type: number, n: number | bigint): Buffer {
  let v = BigInt(n);
  const bytes: number[] = [];
  while (v > 0n) {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  return Buffer.concat([control(type, bytes.length), Buffer.from(bytes)]);
}

function encode(value: Value): Buffer {
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    return Buffer.concat([control(TYPE.string, bytes.length), bytes]);
  }
  if (typeof value === 'number') return unsigned(TYPE.uint32, value);
  if (Array.isArray(value)) return Buffer.concat([control(TYPE.array, value.length), ...value.map(encode)]);
  const entries = Object.entries(value);
  return Buffer.concat([
    control(TYPE.map, entries.length),
    ...entries.flatMap(([k, v]) => [encode(k), encode(v)]),
  ]);
}

/** The 128 bits of an address (IPv4 as ::a.b.c.d), most significant first. */
function bitsOf(ip: string): number[] {
  const bytes = new Uint8Array(16);
  if (isIPv4(ip)) {
    for (const [i, p] of ip.split('.').entries()) bytes[12 + i] = Number(p);
  } else {
    const [head = '', tail = ''] = ip.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    groups.forEach((g, i) => {
      const n = Number.parseInt(g, 16);
      bytes[2 * i] = n >> 8;
      bytes[2 * i + 1] = n & 0xff;
    });
  }
  return [...bytes].flatMap((b) => [7, 6, 5, 4, 3, 2, 1, 0].map((s) => (b >> s) & 1));
}

interface Node {
  children: [Node | number | undefined, Node | number | undefined];
}

/**
 * Builds a database: `networks` maps CIDRs (`81.2.69.0/24`, `2001:db8::/32`) to records. An IPv4
 * prefix length counts within IPv4 (it becomes 96 + length in the tree).
 */
export function buildMmdb(databaseType: string, networks: Record<string, Value>): Buffer {
  const root: Node = { children: [undefined, undefined] };
  const data: Buffer[] = [];
  let dataSize = 0;
  for (const [cidr, record] of Object.entries(networks)) {
    const [ip = '', len = ''] = cidr.split('/');
    const prefix = (isIPv4(ip) ? 96 : 0) + Number(len);
    const encoded = encode(record);
    const offset = dataSize;
    data.push(encoded);
    dataSize += encoded.length;
    const bits = bitsOf(ip);
    let node = root;
    for (let i = 0; i < prefix - 1; i++) {
      const b = bits[i]!;
      let next = node.children[b];
      if (typeof next !== 'object') {
        next = { children: [undefined, undefined] };
        node.children[b] = next;
      }
      node = next;
    }
    node.children[bits[prefix - 1]!] = offset;
  }
  // Number the nodes breadth first; records then point at node numbers or into the data.
  const nodes: Node[] = [];
  const queue: Node[] = [root];
  const index = new Map<Node, number>();
  while (queue.length > 0) {
    const node = queue.shift()!;
    index.set(node, nodes.length);
    nodes.push(node);
    for (const child of node.children) if (typeof child === 'object') queue.push(child);
  }
  const nodeCount = nodes.length;
  const tree = Buffer.alloc(nodeCount * 6);
  nodes.forEach((node, i) => {
    node.children.forEach((child, side) => {
      let value: number;
      if (child === undefined)
        value = nodeCount; // no data
      else if (typeof child === 'number') value = nodeCount + 16 + child;
      else value = index.get(child)!;
      tree.writeUIntBE(value, i * 6 + side * 3, 3);
    });
  });
  const metadata = Buffer.concat([
    control(TYPE.map, 9),
    encode('node_count'),
    unsigned(TYPE.uint32, nodeCount),
    encode('record_size'),
    unsigned(TYPE.uint16, 24),
    encode('ip_version'),
    unsigned(TYPE.uint16, 6),
    encode('database_type'),
    encode(databaseType),
    encode('languages'),
    encode(['en']),
    encode('binary_format_major_version'),
    unsigned(TYPE.uint16, 2),
    encode('binary_format_minor_version'),
    unsigned(TYPE.uint16, 0),
    encode('build_epoch'),
    unsigned(TYPE.uint64, Math.floor(Date.now() / 1000)),
    encode('description'),
    encode({ en: 'arc-responder test database' }),
  ]);
  return Buffer.concat([
    tree,
    Buffer.alloc(16),
    ...data,
    Buffer.from([0xab, 0xcd, 0xef]),
    Buffer.from('MaxMind.com', 'ascii'),
    metadata,
  ]);
}

/** Writes a database file; returns its path. */
export function writeMmdb(path: string, databaseType: string, networks: Record<string, Value>): string {
  writeFileSync(path, buildMmdb(databaseType, networks));
  return path;
}
