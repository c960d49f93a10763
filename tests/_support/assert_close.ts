/**
 * The parity check of every fixture test: max |actual - expected| must be at
 * most `rtol * max |expected|`. Returns the measured error so tests can report it.
 *
 * @module
 */

import { AssertionError } from "node:assert/strict";

/** Max abs difference and max abs reference of two arrays. */
export function maxError(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
): { error: number; scale: number } {
  if (actual.length !== expected.length) {
    throw new AssertionError({ message: `Length ${actual.length} != expected ${expected.length}` });
  }
  let error = 0, scale = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    // NaN anywhere is an error unless both are NaN.
    if (Number.isNaN(d) && !(Number.isNaN(actual[i]) && Number.isNaN(expected[i]))) {
      error = Infinity;
    } else if (d > error) error = d;
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return { error, scale };
}

/** Asserts parity within `rtol` relative to the reference's largest magnitude; returns the relative error. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  what: string,
): number {
  const { error, scale } = maxError(actual, expected);
  const relative = error / (scale || 1);
  if (!(relative <= rtol)) {
    throw new AssertionError({
      message:
        `${what}: max |diff| = ${error.toExponential(3)} is ${relative.toExponential(3)} of ` +
        `max |ref| = ${scale.toExponential(3)}, above the tolerance ${rtol}`,
    });
  }
  return relative;
}
