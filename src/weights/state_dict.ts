/**
 * The in-memory form of a weight file.
 *
 * @module
 */

import type { Tensor } from "../tensor.ts";

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
