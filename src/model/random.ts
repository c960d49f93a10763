/**
 * A small seeded generator (xoshiro128**, seeded through splitmix32) for
 * weight initialisation and dropout seeds: the same seed gives the same
 * numbers on every runtime.
 *
 * @module
 */

/** Seeded uniform and normal draws. */
export class Random {
  #s0 = 0;
  #s1 = 0;
  #s2 = 0;
  #s3 = 0;
  #spare: number | null = null;

  /** @param seed Any integer; its low 32 bits are used. */
  constructor(seed: number) {
    let x = seed >>> 0;
    const s: number[] = [];
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      s.push((z ^ (z >>> 16)) >>> 0);
    }
    if (s.every((v) => !v)) s[0] = 1;
    [this.#s0, this.#s1, this.#s2, this.#s3] = s;
  }

  /** The four 32-bit words of the generator's state (draws after the Box-Muller spare is left out). */
  get state(): number[] {
    // The words are kept as int32 or uint32 (the same bits): hand them out unsigned.
    return [this.#s0, this.#s1, this.#s2, this.#s3].map((w) => w >>> 0);
  }

  /** Continues from a state that {@linkcode Random.state} returned (not all zero); drops the spare. */
  set state(words: readonly number[]) {
    [this.#s0, this.#s1, this.#s2, this.#s3] = words.map((w) => w >>> 0);
    this.#spare = null;
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const s1 = this.#s1;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    const s2 = this.#s2 ^ this.#s0;
    const s3 = this.#s3 ^ s1;
    this.#s1 = s1 ^ s2;
    this.#s0 ^= s3;
    this.#s2 = s2 ^ t;
    this.#s3 = rotl(s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 random bits. */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Fills `out` with draws from U(low, high). */
  uniform(out: Float32Array, low: number, high: number): Float32Array {
    const scale = (high - low) / 4294967296;
    for (let i = 0; i < out.length; i++) out[i] = low + scale * this.nextUint32();
    return out;
  }

  /** Fills `out` with draws from N(mean, std^2) (Box-Muller). */
  normal(out: Float32Array, mean: number, std: number): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.#gaussian();
    return out;
  }

  #gaussian(): number {
    if (this.#spare !== null) {
      const v = this.#spare;
      this.#spare = null;
      return v;
    }
    const u = 1 - this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    const theta = 2 * Math.PI * this.next();
    this.#spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
