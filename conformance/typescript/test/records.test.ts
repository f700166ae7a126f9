import assert from "node:assert/strict";
import { test } from "node:test";

import { hex, unhex } from "../src/cbor.js";
import { Holder, RecordError, checkRecord, decodeRecord, deriveKey, publisherId, signRecord } from "../src/records.js";
import { load, num, str } from "../src/vectors.js";

const file = load("dht_records");

function refusedWith(code: string): (e: unknown) => boolean {
  return (e: unknown) => e instanceof RecordError && e.code === code;
}

for (const group of file.testGroups) {
  for (const t of group.tests) {
    const name = `dht_records tcId ${t.tcId}: ${t.comment}`;
    if (group.type === "DhtRecordSignTest") {
      test(name, () => {
        const fields = {
          keyType: BigInt(num(t, "keyType")),
          ident: unhex(str(t, "ident")),
          seq: BigInt(str(t, "seq")),
          expiresMs: BigInt(num(t, "expiresMs")),
          value: unhex(str(t, "value")),
        };
        const seed = unhex(String(group["seed"]));
        if (t.result !== "valid") {
          assert.throws(() => signRecord(seed, fields), RecordError);
          return;
        }
        const signed = signRecord(seed, fields);
        assert.equal(hex(signed.signedPart), str(t, "signedPart"));
        assert.equal(hex(signed.signature), str(t, "signature"));
        assert.equal(hex(signed.record), str(t, "record"));
        assert.equal(hex(deriveKey(fields.keyType, fields.ident)), str(t, "key"));
        assert.equal(hex(publisherId(decodeRecord(signed.record))), str(t, "publisherId"));
      });
    } else if (group.type === "DhtRecordAcceptTest") {
      test(name, () => {
        const storeKey = typeof t["storeKey"] === "string" ? unhex(t["storeKey"]) : undefined;
        const check = (): ReturnType<typeof decodeRecord> => {
          const record = decodeRecord(unhex(str(t, "record")));
          checkRecord(record, { now: num(group, "now"), maxTtl: num(group, "maxTtl"), storeKey });
          return record;
        };
        if (t.result !== "valid") {
          assert.throws(check, refusedWith(str(t, "expectedError")));
          return;
        }
        const record = check();
        assert.equal(hex(deriveKey(record.keyType, record.ident)), str(t, "key"));
        assert.equal(hex(publisherId(record)), str(t, "publisherId"));
      });
    } else {
      assert.equal(group.type, "DhtStoreSequenceTest");
      test(name, () => {
        const holder = new Holder(group["limits"] as { perKey: number; perPublisher: number; total: number });
        const steps = t["steps"] as Array<Record<string, unknown>>;
        let last: Uint8Array | undefined;
        for (const step of steps) {
          const record = decodeRecord(unhex(String(step["record"])));
          last = deriveKey(record.keyType, record.ident);
          const now = Number(step["now"]);
          if (typeof step["outcome"] === "string") {
            assert.equal(holder.store(record, now), step["outcome"], String(step["comment"]));
          } else {
            assert.throws(() => holder.store(record, now), refusedWith(String(step["expectedError"])));
          }
        }
        assert.ok(last !== undefined);
        assert.deepEqual(holder.held(last).map(hex), t["held"]);
      });
    }
  }
}
