/**
 * Seeded mutations of files for fuzz tests: a small PRNG and one random
 * change per call (bit flips, byte or 32-bit overwrites with boundary values,
 * truncation, insertion or deletion), so a failure names a seed and an
 * iteration that reproduce it.
 */

/** Mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x7fffffff, 0xffffffff, 1e9, 2 ** 31];

/** One random mutation of `bytes` (a copy; `bytes` is not changed). */
export function mutate(bytes: Uint8Array, random: () => number): Uint8Array {
  const at = () => Math.floor(random() * bytes.length);
  const out = bytes.slice();
  switch (Math.floor(random() * 6)) {
    case 0:
      for (let n = 1 + Math.floor(random() * 4); n > 0; n--) out[at()] ^= 1 << (random() * 8);
      return out;
    case 1:
      out[at()] = INTERESTING[Math.floor(random() * 5)];
      return out;
    case 2: {
      const i = Math.min(at(), out.length - 4);
      const value = INTERESTING[Math.floor(random() * INTERESTING.length)];
      new DataView(out.buffer).setUint32(Math.max(0, i), value >>> 0, true);
      return out;
    }
    case 3:
      return out.subarray(0, at());
    case 4: {
      const i = at();
      const inserted = new Uint8Array(1 + Math.floor(random() * 8)).map(() => random() * 256);
      return Uint8Array.from([...out.subarray(0, i), ...inserted, ...out.subarray(i)]);
    }
    default: {
      const i = at();
      return Uint8Array.from([...out.subarray(0, i), ...out.subarray(i + 1 + random() * 8)]);
    }
  }
}
