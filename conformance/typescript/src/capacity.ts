// The capacity score (spec CAP-2.1..CAP-2.6), in integer millipoints.

const DEVICE_CLASS: Readonly<Record<string, number>> = {
  server: 30000,
  "desktop-powerful": 25000,
  "desktop-standard": 20000,
  "laptop-plugged": 15000,
  "laptop-battery": 10000,
  "mobile-wifi": 5000,
  "mobile-cellular": 0,
};
const NAT: Readonly<Record<string, number>> = {
  open: 10000,
  "full-cone": 10000,
  restricted: 6000,
  "port-restricted": 4000,
  symmetric: 2000,
  unknown: 0,
  "udp-blocked": 0,
};
const AVAILABILITY: Readonly<Record<string, number>> = { always: 10000, "when-active": 5000, scheduled: 5000 };
const FULL_BANDWIDTH = 1_250_000; // bytes/s: 10 Mbps, decimal (CAP-2.3)

export interface Capabilities {
  deviceClass: string;
  uploadBandwidth: number;
  downloadBandwidth: number;
  natType: string;
  availability: string;
  [other: string]: unknown;
}

export interface Score {
  deviceClass: number;
  bandwidth: number;
  nat: number;
  availability: number;
  total: number;
}

function lookup(table: Readonly<Record<string, number>>, key: string): number {
  const value = table[key];
  if (value === undefined) throw new Error(`unknown value ${key}`);
  return value;
}

/** CAP-2.1: the four factors and their sum; the battery is not an input (CAP-2.6). */
export function score(c: Capabilities): Score {
  const b = Math.min(c.uploadBandwidth, c.downloadBandwidth);
  // floor(b * 50000 / 1250000) = floor(b / 25), exact on integers below 2^53.
  const bandwidth = b >= FULL_BANDWIDTH ? 50000 : Math.floor(b / 25);
  const parts = {
    deviceClass: lookup(DEVICE_CLASS, c.deviceClass),
    bandwidth,
    nat: lookup(NAT, c.natType),
    availability: lookup(AVAILABILITY, c.availability),
  };
  return { ...parts, total: parts.deviceClass + parts.bandwidth + parts.nat + parts.availability };
}
