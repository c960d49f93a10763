/**
 * The tensor type of the public API: a dense float32 array with a shape, in
 * PyTorch's row-major order (NCHW for images, OIHW for convolution weights).
 *
 * @module
 */

import { ShapeError } from "./errors.ts";

/**
 * A dense, row-major float32 tensor.
 *
 * @example
 * ```ts
 * import { Tensor } from "./tensor.ts";
 * const t = new Tensor(new Float32Array(6), [2, 3]);
 * console.log(t.size); // 6
 * ```
 */
export class Tensor {
  /** The elements, row-major. */
  readonly data: Float32Array;
  /** The dimensions, outermost first. */
  readonly shape: readonly number[];

  /**
   * Wraps `data` (not copied) with `shape`.
   *
   * @param data The elements, row-major; its length must equal the product of `shape`.
   * @param shape Non-negative integer dimensions.
   * @throws {ShapeError} When a dimension is not a non-negative integer or the sizes differ.
   */
  constructor(data: Float32Array, shape: readonly number[]) {
    if (!(data instanceof Float32Array)) {
      throw new ShapeError(
        `Tensor data must be a Float32Array, got ${describe(data)}`,
      );
    }
    const size = shapeSize(shape);
    if (data.length !== size) {
      throw new ShapeError(
        `Tensor data has ${data.length} elements but shape [${shape.join(", ")}] needs ${size}`,
      );
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
  }

  /**
   * Number of elements.
   *
   * @example
   * ```ts
   * import { Tensor } from "./tensor.ts";
   * console.log(Tensor.zeros([1, 3, 2, 2]).size); // 12
   * ```
   */
  get size(): number {
    return this.data.length;
  }

  /**
   * A zero-filled tensor.
   *
   * @param shape Non-negative integer dimensions.
   * @returns A new tensor of zeros.
   *
   * @example
   * ```ts
   * import { Tensor } from "./tensor.ts";
   * const t = Tensor.zeros([2, 2]);
   * console.log(t.data); // Float32Array(4) [0, 0, 0, 0]
   * ```
   */
  static zeros(shape: readonly number[]): Tensor {
    return new Tensor(new Float32Array(shapeSize(shape)), shape);
  }

  /**
   * Index of the largest element along the last dimension, for each row.
   *
   * @returns One index per row (`size / shape.at(-1)` rows).
   *
   * @example
   * ```ts
   * import { Tensor } from "./tensor.ts";
   * const t = new Tensor(new Float32Array([0, 2, 1, 5, 3, 4]), [2, 3]);
   * console.log(t.argmax()); // [1, 0]
   * ```
   */
  argmax(): number[] {
    const cols = this.shape.at(-1) ?? 1;
    const out: number[] = [];
    for (let r = 0; r * cols < this.data.length; r++) {
      let best = 0;
      for (let c = 1; c < cols; c++) {
        if (this.data[r * cols + c] > this.data[r * cols + best]) best = c;
      }
      out.push(best);
    }
    return out;
  }
}

/**
 * Product of the dimensions of `shape`, checking that each is a non-negative
 * safe integer.
 *
 * @param shape The dimensions.
 * @returns The number of elements.
 * @throws {ShapeError} When a dimension is invalid.
 *
 * @example
 * ```ts
 * import { shapeSize } from "./tensor.ts";
 * console.log(shapeSize([2, 3, 4])); // 24
 * ```
 */
export function shapeSize(shape: readonly number[]): number {
  if (!Array.isArray(shape)) {
    throw new ShapeError(`Shape must be an array of integers, got ${describe(shape)}`);
  }
  let size = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new ShapeError(
        `Shape [${shape.join(", ")}] has an invalid dimension ${d}: expected non-negative integers`,
      );
    }
    size *= d;
  }
  if (!Number.isSafeInteger(size)) {
    throw new ShapeError(`Shape [${shape.join(", ")}] has too many elements`);
  }
  return size;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  return (value as object).constructor?.name ?? "object";
}
