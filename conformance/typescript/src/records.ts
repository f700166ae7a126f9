// DHT keys and signed records (spec DHT-2.1, DHT-3.1..DHT-3.4), and a holder (DHT-3.5, DHT-4).

import { sha256 } from "@noble/hashes/sha2.js";

import { CborMap, type CborValue, MalformedError, decode, encode, equalBytes } from "./cbor.js";
import { concat, keyAcceptable, nodeId, publicKeyOf, sign, verify } from "./ed25519.js";

const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);
export const KEY_DOMAIN = concat(ascii("railgun/v1/dht-key"), new Uint8Array(1));
export const RECORD_DOMAIN = concat(ascii("railgun/v1/record"), new Uint8Array(1));
export const KEY_TYPES: ReadonlyMap<bigint, string> = new Map([
  [1n, "peer"],
  [2n, "room"],
  [3n, "rendezvous"],
  [4n, "capability"],
  [5n, "bootstrap"],
]);
const SELF_KEYED = new Set([1n, 4n]);
export const MAX_IDENT = 64;
export const MAX_VALUE = 256;
const U64 = 1n << 64n;

/** DHT-2.1: SHA-256(KEY_DOMAIN || type-name || 0x00 || ident). */
export function deriveKey(keyType: bigint, ident: Uint8Array): Uint8Array {
  const name = KEY_TYPES.get(keyType);
  if (name === undefined) throw new RecordError("MALFORMED");
  return sha256(concat(KEY_DOMAIN, ascii(name), new Uint8Array(1), ident));
}

export type RecordRefusal =
  | "MALFORMED"
  | "TOO_LARGE"
  | "BAD_KEY"
  | "BAD_SIGNATURE"
  | "WRONG_KEY"
  | "FORBIDDEN"
  | "EXPIRED"
  | "TTL_TOO_LONG"
  | "STALE_SEQUENCE"
  | "QUOTA";

export class RecordError extends Error {
  constructor(readonly code: RecordRefusal) {
    super(code);
  }
}

export interface DhtRecord {
  keyType: bigint;
  ident: Uint8Array;
  publisherKey: Uint8Array;
  seq: bigint;
  expiresMs: bigint;
  value: Uint8Array;
  signature: Uint8Array;
  encoded: Uint8Array;
}

function signedPart(r: Omit<DhtRecord, "signature" | "encoded">): Uint8Array {
  return encode(
    new CborMap([
      [0n, r.keyType],
      [1n, r.ident],
      [2n, r.publisherKey],
      [3n, r.seq],
      [4n, r.expiresMs],
      [5n, r.value],
    ]),
  );
}

/** DHT-3.1/3.2: a publisher's record, or RecordError for fields it must not sign. */
export function signRecord(
  seed: Uint8Array,
  fields: { keyType: bigint; ident: Uint8Array; seq: bigint; expiresMs: bigint; value: Uint8Array },
): { signedPart: Uint8Array; signature: Uint8Array; record: Uint8Array } {
  if (!KEY_TYPES.has(fields.keyType)) throw new RecordError("MALFORMED");
  if (fields.ident.length > MAX_IDENT || fields.value.length > MAX_VALUE) throw new RecordError("TOO_LARGE");
  if (fields.seq < 0n || fields.seq >= U64 || fields.expiresMs < 0n || fields.expiresMs >= U64) {
    throw new RecordError("MALFORMED");
  }
  const publisherKey = publicKeyOf(seed);
  const part = signedPart({ ...fields, publisherKey });
  const signature = sign(seed, concat(RECORD_DOMAIN, part));
  const record = encode(
    new CborMap([
      [0n, fields.keyType],
      [1n, fields.ident],
      [2n, publisherKey],
      [3n, fields.seq],
      [4n, fields.expiresMs],
      [5n, fields.value],
      [6n, signature],
    ]),
  );
  return { signedPart: part, signature, record };
}

function shape(value: CborValue, encoded: Uint8Array): DhtRecord {
  if (!(value instanceof CborMap) || value.keys().join() !== "0,1,2,3,4,5,6") throw new RecordError("MALFORMED");
  const [keyType, ident, publisherKey, seq, expiresMs, val, signature] = [0, 1, 2, 3, 4, 5, 6].map((k) =>
    value.get(k),
  );
  const uint = (v: CborValue | undefined): v is bigint => typeof v === "bigint" && v >= 0n;
  if (
    !uint(keyType) ||
    !KEY_TYPES.has(keyType) ||
    !(ident instanceof Uint8Array) ||
    !(val instanceof Uint8Array) ||
    !(publisherKey instanceof Uint8Array) ||
    publisherKey.length !== 32 ||
    !(signature instanceof Uint8Array) ||
    signature.length !== 64 ||
    !uint(seq) ||
    !uint(expiresMs)
  ) {
    throw new RecordError("MALFORMED");
  }
  return { keyType, ident, publisherKey, seq, expiresMs, value: val, signature, encoded };
}

/** Record bytes (deterministic CBOR) to a record, or MALFORMED. */
export function decodeRecord(encoded: Uint8Array): DhtRecord {
  let value: CborValue;
  try {
    value = decode(encoded);
  } catch (error) {
    if (error instanceof MalformedError) throw new RecordError("MALFORMED");
    throw error;
  }
  return shape(value, encoded);
}

/** DHT-3.3 steps 1..8 at `now` (seconds): the first failing check's code, or nothing. */
export function checkRecord(
  record: DhtRecord,
  options: { now: number; maxTtl: number; storeKey?: Uint8Array | undefined },
): void {
  if (record.ident.length > MAX_IDENT || record.value.length > MAX_VALUE) throw new RecordError("TOO_LARGE");
  if (!keyAcceptable(record.publisherKey)) throw new RecordError("BAD_KEY");
  if (!verify(record.publisherKey, concat(RECORD_DOMAIN, signedPart(record)), record.signature)) {
    throw new RecordError("BAD_SIGNATURE");
  }
  const key = deriveKey(record.keyType, record.ident);
  if (options.storeKey !== undefined && !equalBytes(key, options.storeKey)) throw new RecordError("WRONG_KEY");
  if (SELF_KEYED.has(record.keyType) && !equalBytes(record.ident, nodeId(record.publisherKey))) {
    throw new RecordError("FORBIDDEN");
  }
  // Compared in exact integers: expires / 1000 > now  <=>  expires > now * 1000.
  if (!afterMs(record.expiresMs, options.now)) throw new RecordError("EXPIRED");
  if (afterMs(record.expiresMs, options.now + options.maxTtl)) throw new RecordError("TTL_TOO_LONG");
}

/** Whether `expiresMs` / 1000 > `seconds`, exactly (seconds given as a JS number). */
export function afterMs(expiresMs: bigint, seconds: number): boolean {
  const [whole, fraction = ""] = seconds.toFixed(6).split(".");
  const micro = BigInt(whole ?? "0") * 1_000_000n + BigInt(fraction.padEnd(6, "0"));
  return expiresMs * 1000n > micro;
}

export function publisherId(record: DhtRecord): Uint8Array {
  return nodeId(record.publisherKey);
}

/** DHT-3.2: the longest a record may live ahead of the receiver's clock, s. */
export const MAX_TTL = 605100;

export type StoreOutcome = "STORED" | "REPLACED" | "UNCHANGED";

/** A holder (DHT-3.5, DHT-4.1, DHT-4.3, DHT-4.4): entries keyed by (key, publisher id). */
export class Holder {
  private readonly entries = new Map<string, { key: string; publisher: string; record: DhtRecord }>();
  constructor(private readonly limits: { perKey: number; perPublisher: number; total: number }) {}

  /** Take a record at `now` (s): its outcome, or RecordError with the refusal code. */
  store(record: DhtRecord, now: number): StoreOutcome {
    this.dropExpired(now);
    checkRecord(record, { now, maxTtl: MAX_TTL });
    const key = Buffer.from(deriveKey(record.keyType, record.ident)).toString("hex");
    const publisher = Buffer.from(publisherId(record)).toString("hex");
    const slot = `${key}/${publisher}`;
    const held = this.entries.get(slot);
    if (held !== undefined) {
      if (record.seq > held.record.seq) {
        this.entries.set(slot, { key, publisher, record });
        return "REPLACED";
      }
      if (record.seq === held.record.seq && equalBytes(record.encoded, held.record.encoded)) return "UNCHANGED";
      throw new RecordError("STALE_SEQUENCE");
    }
    const all = [...this.entries.values()];
    if (
      all.filter((e) => e.key === key).length >= this.limits.perKey ||
      all.filter((e) => e.publisher === publisher).length >= this.limits.perPublisher ||
      all.length >= this.limits.total
    ) {
      throw new RecordError("QUOTA");
    }
    this.entries.set(slot, { key, publisher, record });
    return "STORED";
  }

  /** DHT-4.1: the live records under `key`, by ascending publisher id. */
  held(key: Uint8Array): Uint8Array[] {
    const wanted = Buffer.from(key).toString("hex");
    return [...this.entries.values()]
      .filter((e) => e.key === wanted)
      .sort((a, b) => (a.publisher < b.publisher ? -1 : 1))
      .map((e) => e.record.encoded);
  }

  private dropExpired(now: number): void {
    for (const [slot, entry] of this.entries) {
      if (!afterMs(entry.record.expiresMs, now)) this.entries.delete(slot);
    }
  }
}
