// The signed envelope (spec ENV-1.x) and the receiver's checks in order (ENV-2.1).

import { CborMap, type CborValue, MalformedError, decode, encode, equalBytes } from "./cbor.js";
import { concat, keyAcceptable, nodeId, publicKeyOf, sign, verify } from "./ed25519.js";

/** ENV-1.3: "railgun/v1/envelope" and one zero byte. */
export const ENVELOPE_DOMAIN = concat(new TextEncoder().encode("railgun/v1/envelope"), new Uint8Array(1));

export interface Envelope {
  version: bigint;
  messageType: bigint;
  requestId: bigint;
  senderKey: Uint8Array;
  timestampMs: bigint;
  body: CborMap;
}

export type Refusal =
  | "TOO_LARGE"
  | "MALFORMED"
  | "UNSUPPORTED_VERSION"
  | "BAD_KEY"
  | "BAD_SIGNATURE"
  | "WRONG_SENDER";

export class EnvelopeError extends Error {
  constructor(readonly code: Refusal) {
    super(code);
  }
}

function tryDecode(data: Uint8Array): CborValue {
  try {
    return decode(data);
  } catch (error) {
    if (error instanceof MalformedError) throw new EnvelopeError("MALFORMED");
    throw error;
  }
}

const isUint = (v: CborValue | undefined): v is bigint => typeof v === "bigint" && v >= 0n;

/** ENV-2.1 steps 1..9: the envelope, or EnvelopeError with the first failing check's code. */
export function openEnvelope(data: Uint8Array, maxSize: number, expectedSender?: Uint8Array): Envelope {
  if (data.length > maxSize) throw new EnvelopeError("TOO_LARGE");
  const outer = tryDecode(data);
  if (!Array.isArray(outer) || outer.length !== 2) throw new EnvelopeError("MALFORMED");
  const [signed, signature] = outer;
  if (!(signed instanceof Uint8Array) || !(signature instanceof Uint8Array) || signature.length !== 64) {
    throw new EnvelopeError("MALFORMED");
  }
  const inner = tryDecode(signed);
  if (!(inner instanceof CborMap) || inner.keys().join() !== "0,1,2,3,4,5") throw new EnvelopeError("MALFORMED");
  const [version, messageType, requestId, senderKey, timestampMs, body] = [0, 1, 2, 3, 4, 5].map((k) => inner.get(k));
  if (
    !isUint(version) ||
    !isUint(messageType) ||
    !isUint(requestId) ||
    !isUint(timestampMs) ||
    !(senderKey instanceof Uint8Array) ||
    senderKey.length !== 32 ||
    !(body instanceof CborMap)
  ) {
    throw new EnvelopeError("MALFORMED");
  }
  if (version !== 1n) throw new EnvelopeError("UNSUPPORTED_VERSION");
  if (!keyAcceptable(senderKey)) throw new EnvelopeError("BAD_KEY");
  if (!verify(senderKey, concat(ENVELOPE_DOMAIN, signed), signature)) throw new EnvelopeError("BAD_SIGNATURE");
  if (expectedSender !== undefined && !equalBytes(nodeId(senderKey), expectedSender)) {
    throw new EnvelopeError("WRONG_SENDER");
  }
  return { version, messageType, requestId, senderKey, timestampMs, body };
}

/** ENV-1.2, ENV-1.3: the envelope bytes the sender with `seed` emits, or null when over `maxSize`. */
export function sealEnvelope(
  seed: Uint8Array,
  fields: { messageType: bigint; requestId: bigint; timestampMs: bigint; body: CborMap },
  maxSize: number,
): Uint8Array | null {
  const signed = encode(
    new CborMap([
      [0n, 1n],
      [1n, fields.messageType],
      [2n, fields.requestId],
      [3n, publicKeyOf(seed)],
      [4n, fields.timestampMs],
      [5n, fields.body],
    ]),
  );
  const envelope = encode([signed, sign(seed, concat(ENVELOPE_DOMAIN, signed))]);
  return envelope.length > maxSize ? null : envelope;
}
