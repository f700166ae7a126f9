// Loading the kit's JSON vectors (Wycheproof layout) from railgun_ref/conformance/vectors.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The vectors directory; RAILGUN_VECTORS overrides it. */
export const VECTORS_DIR =
  process.env["RAILGUN_VECTORS"] ??
  join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..", "railgun_ref", "conformance", "vectors");

export interface TestCase {
  tcId: number;
  comment: string;
  flags: string[];
  result: "valid" | "invalid" | "acceptable";
  clause: string;
  [field: string]: unknown;
}

export interface TestGroup {
  type: string;
  tests: TestCase[];
  [field: string]: unknown;
}

export interface VectorFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: TestGroup[];
}

export function load(name: string): VectorFile {
  const file = JSON.parse(readFileSync(join(VECTORS_DIR, `${name}.json`), "utf8")) as VectorFile;
  const count = file.testGroups.reduce((n, g) => n + g.tests.length, 0);
  if (count !== file.numberOfTests) throw new Error(`${name}: ${count} tests, header says ${file.numberOfTests}`);
  return file;
}

export function str(test: TestCase, field: string): string {
  const value = test[field];
  if (typeof value !== "string") throw new Error(`tcId ${test.tcId}: ${field} is not a string`);
  return value;
}

export function num(test: TestCase | TestGroup, field: string): number {
  const value = test[field];
  if (typeof value !== "number") throw new Error(`${field} is not a number`);
  return value;
}
