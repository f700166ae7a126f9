import assert from "node:assert/strict";
import { test } from "node:test";

import { unhex } from "../src/cbor.js";
import { verify } from "../src/ed25519.js";
import { load, str } from "../src/vectors.js";

for (const group of load("ed25519").testGroups) {
  assert.equal(group.type, "Ed25519VerifyTest");
  const publicKey = unhex(String(group["publicKey"]));
  for (const t of group.tests) {
    test(`ed25519 tcId ${t.tcId}: ${t.comment}`, () => {
      const accepted = verify(publicKey, unhex(str(t, "msg")), unhex(str(t, "sig")));
      assert.equal(accepted, t.result === "valid", `flags ${t.flags.join(",")}`);
    });
  }
}
