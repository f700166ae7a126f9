// Deterministic CBOR (spec ENC-1.x): a strict decoder and the one encoder.
//
// Written by hand, not with a CBOR library: the kit's data model (unsigned-integer map
// keys only, no floats, tags or simple values besides false/true/null, a nesting limit,
// one error MALFORMED for everything) is narrower than any library's strict mode, and
// cborg's `strict` checks shortest heads but neither map order nor the depth rule
// (ENC-1.4). The decoder checks every rule directly, then re-encodes and compares
// (ENC-1.5 (c)) as a second line of defence.

export type CborValue =
  | bigint
  | Uint8Array
  | string
  | boolean
  | null
  | CborValue[]
  | CborMap;

/** A map with unsigned-integer keys, kept in ascending key order. */
export class CborMap {
  readonly entries: ReadonlyArray<readonly [bigint, CborValue]>;
  constructor(entries: ReadonlyArray<readonly [bigint, CborValue]>) {
    this.entries = entries;
  }
  get(key: number | bigint): CborValue | undefined {
    const wanted = BigInt(key);
    return this.entries.find(([k]) => k === wanted)?.[1];
  }
  keys(): bigint[] {
    return this.entries.map(([k]) => k);
  }
}

export class MalformedError extends Error {
  readonly code = "MALFORMED";
}

export const MAX_DEPTH = 8;
const U64_MAX = (1n << 64n) - 1n;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function malformed(why: string): never {
  throw new MalformedError(why);
}

class Reader {
  private pos = 0;
  constructor(private readonly data: Uint8Array) {}
  get done(): boolean {
    return this.pos === this.data.length;
  }
  byte(): number {
    const b = this.data[this.pos];
    if (b === undefined) malformed("truncated");
    this.pos += 1;
    return b;
  }
  bytes(n: bigint): Uint8Array {
    // ENC-1.5: never allocate by a length the input cannot back.
    if (n > BigInt(this.data.length - this.pos)) malformed("length beyond the input");
    const size = Number(n);
    const out = this.data.slice(this.pos, this.pos + size);
    this.pos += size;
    return out;
  }
  uint(size: number): bigint {
    let value = 0n;
    for (let i = 0; i < size; i++) value = (value << 8n) | BigInt(this.byte());
    return value;
  }
}

/** The argument of a head, refusing reserved, indefinite and non-shortest forms. */
function argument(reader: Reader, info: number): bigint {
  if (info < 24) return BigInt(info);
  if (info > 27) malformed(info === 31 ? "indefinite length or break" : "reserved head");
  const size = 1 << (info - 24);
  const value = reader.uint(size);
  const smallest = size === 1 ? 24n : 1n << BigInt(4 * size);
  if (value < smallest) malformed("non-shortest head");
  return value;
}

function item(reader: Reader, depth: number): CborValue {
  if (depth > MAX_DEPTH) malformed("nesting deeper than 8");
  const head = reader.byte();
  const major = head >> 5;
  const info = head & 0x1f;
  if (major === 7) {
    if (info === 20) return false;
    if (info === 21) return true;
    if (info === 22) return null;
    malformed("float or simple value outside the data model");
  }
  if (major === 6) malformed("tag");
  const arg = argument(reader, info);
  switch (major) {
    case 0:
      return arg;
    case 1:
      return -1n - arg;
    case 2:
      return reader.bytes(arg);
    case 3:
      try {
        return utf8.decode(reader.bytes(arg));
      } catch (error) {
        if (error instanceof MalformedError) throw error;
        return malformed("invalid UTF-8");
      }
    case 4: {
      const out: CborValue[] = [];
      for (let i = 0n; i < arg; i++) out.push(item(reader, depth + 1));
      return out;
    }
    default: {
      const entries: Array<readonly [bigint, CborValue]> = [];
      for (let i = 0n; i < arg; i++) {
        const key = item(reader, depth + 1);
        if (typeof key !== "bigint" || key < 0n) malformed("map key not an unsigned integer");
        const last = entries[entries.length - 1];
        if (last !== undefined && key <= last[0]) malformed("map keys not strictly ascending");
        entries.push([key, item(reader, depth + 1)]);
      }
      return new CborMap(entries);
    }
  }
}

/** ENC-1.5: the value of `data`, or MalformedError. */
export function decode(data: Uint8Array): CborValue {
  const reader = new Reader(data);
  const value = item(reader, 0);
  if (!reader.done) malformed("trailing bytes");
  if (!equalBytes(encode(value), data)) malformed("re-encoding differs");
  return value;
}

function head(major: number, value: bigint): number[] {
  if (value < 0n || value > U64_MAX) throw new RangeError("integer outside 64 bits");
  if (value < 24n) return [(major << 5) | Number(value)];
  for (const [info, size] of [
    [24, 1],
    [25, 2],
    [26, 4],
    [27, 8],
  ] as const) {
    if (value < 1n << BigInt(8 * size)) {
      const out = [(major << 5) | info];
      for (let i = size - 1; i >= 0; i--) out.push(Number((value >> BigInt(8 * i)) & 0xffn));
      return out;
    }
  }
  throw new RangeError("unreachable");
}

const utf8Encoder = new TextEncoder();

function encodeInto(value: CborValue, out: number[], depth: number): void {
  if (depth > MAX_DEPTH) throw new RangeError("nesting deeper than 8");
  if (value === false) out.push(0xf4);
  else if (value === true) out.push(0xf5);
  else if (value === null) out.push(0xf6);
  else if (typeof value === "bigint") {
    out.push(...(value >= 0n ? head(0, value) : head(1, -1n - value)));
  } else if (value instanceof Uint8Array) {
    out.push(...head(2, BigInt(value.length)));
    for (const b of value) out.push(b);
  } else if (typeof value === "string") {
    const bytes = utf8Encoder.encode(value);
    out.push(...head(3, BigInt(bytes.length)));
    for (const b of bytes) out.push(b);
  } else if (Array.isArray(value)) {
    out.push(...head(4, BigInt(value.length)));
    for (const element of value) encodeInto(element, out, depth + 1);
  } else {
    const entries = [...value.entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    out.push(...head(5, BigInt(entries.length)));
    for (const [key, element] of entries) {
      encodeInto(key, out, depth + 1);
      encodeInto(element, out, depth + 1);
    }
  }
}

/** ENC-1.1: the deterministic encoding of `value`. */
export function encode(value: CborValue): Uint8Array {
  const out: number[] = [];
  encodeInto(value, out, 0);
  return Uint8Array.from(out);
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

export function unhex(text: string): Uint8Array {
  if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error(`not lowercase hex: ${text}`);
  return Uint8Array.from(Buffer.from(text, "hex"));
}

/** RFC 8949 §8 diagnostic notation, as the vectors write it. */
export function diagnostic(value: CborValue): string {
  if (value === null) return "null";
  if (typeof value === "boolean") return String(value);
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) return `h'${hex(value)}'`;
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(diagnostic).join(", ")}]`;
  return `{${value.entries.map(([k, v]) => `${k}: ${diagnostic(v)}`).join(", ")}}`;
}
