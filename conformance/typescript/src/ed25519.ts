// Ed25519 verification under the kit's edge rules (spec ID-2.1..ID-2.5), on @noble/curves.
//
// noble's own `verify` follows RFC 8032 / ZIP-215 options, neither of which is ID-2 (it
// accepts small-order keys), so the rules are checked here and only the curve arithmetic
// comes from the library: point decoding, [S]B - [k]A, and the canonical encoding.

import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";

import { equalBytes } from "./cbor.js";

const P = (1n << 255n) - 19n;
const L = (1n << 252n) + 27742317777372353535851937790883648493n;
const Point = ed25519.Point;

/** y-coordinates of the eight small-order points (ID-2.2's table). */
const SMALL_ORDER_Y: ReadonlySet<bigint> = new Set(
  [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  ].map((h) => littleEndian(Uint8Array.from(Buffer.from(h, "hex")))),
);

export function littleEndian(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] ?? 0);
  return value;
}

function low255(bytes: Uint8Array): bigint {
  return littleEndian(bytes) & ((1n << 255n) - 1n);
}

/** ID-2.1 and the encoding rules of ID-2.2: false for a key a verifier refuses (BAD_KEY).
 * A canonical key that is no curve point passes here; verification then fails (ID-2.5). */
export function keyAcceptable(publicKey: Uint8Array): boolean {
  if (publicKey.length !== 32) return false;
  const y = low255(publicKey);
  return y < P && !SMALL_ORDER_Y.has(y);
}

/** ID-2.1..ID-2.5: whether `signature` by `publicKey` over `message` is accepted. */
export function verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!keyAcceptable(publicKey) || signature.length !== 64) return false;
  const r = signature.subarray(0, 32);
  if (SMALL_ORDER_Y.has(low255(r) % P)) return false; // ID-2.3
  const s = littleEndian(signature.subarray(32));
  if (s >= L) return false; // ID-2.4
  let a;
  try {
    a = Point.fromBytes(publicKey, false);
  } catch {
    return false; // not a curve point
  }
  const k = littleEndian(sha512(concat(r, publicKey, message))) % L;
  const candidate = Point.BASE.multiplyUnsafe(s).subtract(a.multiplyUnsafe(k));
  return equalBytes(candidate.toBytes(), r); // ID-2.5: compared on encodings
}

/** RFC 8032 signing with a 32-byte seed (ID-1.2). */
export function sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
  return ed25519.sign(message, seed);
}

export function publicKeyOf(seed: Uint8Array): Uint8Array {
  return ed25519.getPublicKey(seed);
}

/** ID-1.1: NodeId = SHA-256(public key). */
export function nodeId(publicKey: Uint8Array): Uint8Array {
  return sha256(publicKey);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
