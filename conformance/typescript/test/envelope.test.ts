import assert from "node:assert/strict";
import { test } from "node:test";

import { CborMap, decode, encode as encodeBody, hex, unhex } from "../src/cbor.js";
import { nodeId } from "../src/ed25519.js";
import { EnvelopeError, openEnvelope, sealEnvelope } from "../src/envelope.js";
import { load, num, str } from "../src/vectors.js";

const file = load("envelope");

function body(hexBody: string): CborMap {
  const value = decode(unhex(hexBody));
  assert.ok(value instanceof CborMap);
  return value;
}

for (const group of file.testGroups) {
  for (const t of group.tests) {
    const name = `envelope tcId ${t.tcId}: ${t.comment}`;
    if (group.type === "EnvelopeEncodeTest") {
      test(name, () => {
        const sealed = sealEnvelope(
          unhex(String(group["seed"])),
          {
            messageType: BigInt(num(t, "messageType")),
            requestId: BigInt(str(t, "requestId")),
            timestampMs: BigInt(num(t, "timestampMs")),
            body: body(str(t, "body")),
          },
          num(t, "maxSize"),
        );
        if (t.result === "valid") assert.equal(sealed && hex(sealed), str(t, "envelope"));
        else assert.equal(sealed, null);
      });
    } else {
      assert.equal(group.type, "EnvelopeDecodeTest");
      const expected = group["expectedSender"];
      const sender = typeof expected === "string" ? unhex(expected) : undefined;
      test(name, () => {
        const data = unhex(str(t, "envelope"));
        if (t.result !== "valid") {
          assert.throws(
            () => openEnvelope(data, num(group, "maxSize"), sender),
            (e: unknown) => e instanceof EnvelopeError && e.code === str(t, "expectedError"),
          );
          return;
        }
        const got = openEnvelope(data, num(group, "maxSize"), sender);
        const want = t["decoded"] as Record<string, unknown>;
        assert.deepEqual(
          {
            version: Number(got.version),
            messageType: Number(got.messageType),
            requestId: got.requestId.toString(),
            senderKey: hex(got.senderKey),
            senderId: hex(nodeId(got.senderKey)),
            timestampMs: Number(got.timestampMs),
            body: hex(decodeBodyBytes(data)),
          },
          want,
        );
      });
    }
  }
}

/** The body's bytes as they appear inside `signed` (its deterministic encoding). */
function decodeBodyBytes(envelope: Uint8Array): Uint8Array {
  const outer = decode(envelope);
  assert.ok(Array.isArray(outer) && outer[0] instanceof Uint8Array);
  const inner = decode(outer[0]);
  assert.ok(inner instanceof CborMap);
  const b = inner.get(5);
  assert.ok(b instanceof CborMap);
  return encodeBody(b);
}
