/**
 * The in-memory form of a weight file.
 *
 * @module
 */

import { OptionError, ShapeError } from "../errors.ts";
import { Tensor } from "../tensor.ts";
import { describeValue } from "../validate.ts";

/**
 * Tensors by their PyTorch state-dict key (`conv1.conv.weight`, ...), in the
 * file's order, each float32 in PyTorch's row-major layout.
 *
 * @example
 * ```ts
 * import type { StateDict } from "./state_dict.ts";
 * import { Tensor } from "../tensor.ts";
 * const dict: StateDict = new Map([["fc.bias", Tensor.zeros([1000])]]);
 * console.log(dict.get("fc.bias")?.shape); // [1000]
 * ```
 */
export type StateDict = Map<string, Tensor>;

/**
 * Checks that `tensors` is a state dict a writer can encode: a `Map` of
 * string keys to {@linkcode Tensor}s whose data holds exactly the elements
 * their shape needs (an object that merely claims to be a Tensor is refused).
 *
 * @param tensors The value as given.
 * @param name What it is called in messages.
 * @throws {OptionError} When it is not a `Map` of strings to Tensors.
 * @throws {ShapeError} When a tensor's data does not match its shape.
 *
 * @example
 * ```ts
 * import { checkStateDict } from "./state_dict.ts";
 * import { Tensor } from "../tensor.ts";
 * checkStateDict(new Map([["w", Tensor.zeros([2])]]));
 * try {
 *   checkStateDict({ w: Tensor.zeros([2]) });
 * } catch (error) {
 *   console.log((error as Error).message);
 *   // Expected tensors to be a Map of state-dict keys to Tensors, got an object
 * }
 * ```
 */
export function checkStateDict(tensors: unknown, name = "tensors"): asserts tensors is StateDict {
  if (!(tensors instanceof Map)) {
    throw new OptionError(
      `Expected ${name} to be a Map of state-dict keys to Tensors, got ${describeValue(tensors)}`,
    );
  }
  for (const [key, tensor] of tensors) {
    if (typeof key !== "string") {
      throw new OptionError(
        `Expected the keys of ${name} to be strings, got ${describeValue(key)}`,
      );
    }
    if (!(tensor instanceof Tensor)) {
      throw new OptionError(
        `Expected ${name} "${key}" to be a Tensor, got ${describeValue(tensor)}`,
      );
    }
    const { data, shape } = tensor;
    const ok = data instanceof Float32Array && Array.isArray(shape) &&
      shape.every((d) => Number.isSafeInteger(d) && d >= 0) &&
      shape.reduce((a, d) => a * d, 1) === data.length;
    if (!ok) {
      throw new ShapeError(
        `Tensor "${key}" of ${name} has data of ${describeValue(data)} for shape ` +
          `${describeValue(shape)}: expected a Float32Array of the shape's size`,
      );
    }
  }
}
