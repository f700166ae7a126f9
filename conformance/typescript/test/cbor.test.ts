import assert from "node:assert/strict";
import { test } from "node:test";

import { MAX_DEPTH, MalformedError, decode, diagnostic, unhex } from "../src/cbor.js";
import { load, num, str } from "../src/vectors.js";

const file = load("cbor");

test("cbor.json: every test group is a CborDecodeTest with the depth of ENC-1.4", () => {
  for (const group of file.testGroups) {
    assert.equal(group.type, "CborDecodeTest");
    assert.equal(num(group, "maxDepth"), MAX_DEPTH);
  }
});

for (const group of file.testGroups) {
  for (const t of group.tests) {
    test(`cbor tcId ${t.tcId}: ${t.comment}`, () => {
      const data = unhex(str(t, "encoded"));
      if (t.result === "valid") {
        assert.equal(diagnostic(decode(data)), str(t, "diagnostic"));
      } else {
        assert.equal(str(t, "expectedError"), "MALFORMED");
        assert.throws(() => decode(data), MalformedError);
      }
    });
  }
}
