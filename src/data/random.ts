/**
 * The seeded pseudo-random numbers of the data pipeline (shuffling, splits,
 * augmentation). They cannot equal PyTorch's Mersenne Twister streams; what is
 * reproducible is the same seed giving the same numbers here, on any number of
 * workers.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import { checkInteger } from "../validate.ts";

/**
 * A source of random numbers in the shapes torchvision draws them:
 * `torch.empty(1).uniform_(low, high)` (float32) and `torch.randint(low, high)`.
 * {@linkcode Random} implements it; a test can replay recorded torch draws.
 */
export interface RandomSource {
  /**
   * A float32 number uniform in `[low, high)`.
   *
   * @param low Inclusive lower bound.
   * @param high Exclusive upper bound.
   */
  uniform(low: number, high: number): number;
  /**
   * An integer uniform in `[low, high)`.
   *
   * @param low Inclusive lower bound.
   * @param high Exclusive upper bound, greater than `low`.
   */
  randint(low: number, high: number): number;
}

/**
 * Mulberry32 (Tommy Ettinger's 32-bit generator: one 32-bit state word advanced
 * by the odd constant `0x6d2b79f5`, then an xorshift-multiply output mix),
 * period 2^32. Enough for shuffles and crop boxes; not cryptographic.
 *
 * @example
 * ```ts
 * import { Random } from "./random.ts";
 * const a = new Random(7), b = new Random(7);
 * console.log(a.next() === b.next()); // true
 * ```
 */
export class Random implements RandomSource {
  #state: number;

  /**
   * Creates a generator.
   *
   * @param seed Any number; its low 32 bits are the initial state.
   */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /**
   * The next 32-bit unsigned integer.
   *
   * @returns An integer in `[0, 2^32)`.
   *
   * @example
   * ```ts
   * import { Random } from "./random.ts";
   * console.log(new Random(1).nextUint32() < 2 ** 32); // true
   * ```
   */
  nextUint32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /**
   * A double uniform in `[0, 1)` with 53 random bits (two 32-bit draws).
   *
   * @returns A number in `[0, 1)`.
   *
   * @example
   * ```ts
   * import { Random } from "./random.ts";
   * const x = new Random(3).next();
   * console.log(x >= 0 && x < 1); // true
   * ```
   */
  next(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 67108864 + low) / 9007199254740992;
  }

  /**
   * A float32 uniform in `[low, high)`, in the shape of torch's CPU float
   * sampler (the bits differ): 24 random bits scaled to `[0, 1)`, then
   * `u * (high - low) + low`, rounded to float32.
   *
   * @param low Inclusive lower bound.
   * @param high Exclusive upper bound.
   * @returns A float32 value.
   *
   * @example
   * ```ts
   * import { Random } from "./random.ts";
   * const x = new Random(3).uniform(0.08, 1);
   * console.log(x >= 0.08 && x <= 1); // true
   * ```
   */
  uniform(low: number, high: number): number {
    const u = (this.nextUint32() >>> 8) / 16777216;
    return Math.fround(Math.fround(u * Math.fround(high - low)) + Math.fround(low));
  }

  /**
   * An integer uniform in `[low, high)`, without modulo bias.
   *
   * @param low Inclusive lower bound, an integer.
   * @param high Exclusive upper bound, an integer greater than `low`.
   * @returns An integer.
   * @throws {OptionError} When the range is empty or not made of safe integers.
   *
   * @example
   * ```ts
   * import { Random } from "./random.ts";
   * const die = new Random(5).randint(1, 7);
   * console.log(die >= 1 && die <= 6); // true
   * ```
   */
  randint(low: number, high: number): number {
    if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high) || high <= low) {
      throw new OptionError(`Expected integers low < high for randint, got ${low} and ${high}`);
    }
    return low + Math.floor(this.next() * (high - low));
  }

  /**
   * Shuffles `array` in place (Fisher-Yates, from the end).
   *
   * @param array The array to permute.
   * @returns `array`.
   *
   * @example
   * ```ts
   * import { Random } from "./random.ts";
   * console.log(new Random(1).shuffle([1, 2, 3, 4]).sort()); // [1, 2, 3, 4]
   * ```
   */
  shuffle<T extends { length: number; [i: number]: unknown }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const t = array[i];
      array[i] = array[j];
      array[j] = t;
    }
    return array;
  }
}

/**
 * Mixes several integers into one 32-bit seed (MurmurHash3's finaliser over
 * each word), so that `(seed, epoch, index)` gives independent streams.
 *
 * @param words Integers; only their low 32 bits count.
 * @returns A 32-bit unsigned seed.
 *
 * @example
 * ```ts
 * import { mixSeed } from "./random.ts";
 * console.log(mixSeed(0, 1) !== mixSeed(1, 0)); // true
 * ```
 */
export function mixSeed(...words: number[]): number {
  let h = 0x9e3779b9;
  for (const word of words) {
    h = Math.imul(h ^ (word >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    h = (h + 0x7f4a7c15) >>> 0;
  }
  return h >>> 0;
}

/**
 * Checks a data pipeline seed: an integer from -(2^31) to 2^32 - 1, one
 * 32-bit word read signed or unsigned (-1 is 4294967295). Anything wider
 * would share its low 32 bits, and so its streams, with a seed in range
 * (2^32 would give seed 0's shuffles), so it is refused, as are fractions,
 * NaN and strings.
 *
 * @param value The seed as given.
 * @param fallback Returned when `value` is `undefined`.
 * @returns The seed.
 * @throws {OptionError} When `value` is not such an integer.
 *
 * @example
 * ```ts
 * import { checkSeed } from "./random.ts";
 * console.log(checkSeed(undefined, 0), checkSeed(-1, 0)); // 0 -1
 * ```
 */
export function checkSeed(value: unknown, fallback: number): number {
  return checkInteger("seed", value, { min: -(2 ** 31), max: 2 ** 32 - 1, default: fallback });
}
