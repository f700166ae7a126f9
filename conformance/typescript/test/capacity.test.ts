import assert from "node:assert/strict";
import { test } from "node:test";

import { type Capabilities, score } from "../src/capacity.js";
import { load } from "../src/vectors.js";

for (const group of load("capacity").testGroups) {
  if (group.type !== "CapabilityScoreTest") continue; // this consumer covers CAP-2 only
  assert.equal(group["unit"], "millipoint");
  for (const t of group.tests) {
    test(`capacity tcId ${t.tcId}: ${t.comment}`, () => {
      assert.equal(t.result, "valid");
      assert.deepEqual(score(t["capabilities"] as Capabilities), t["score"]);
    });
  }
}
