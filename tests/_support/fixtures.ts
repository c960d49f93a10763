/**
 * Loads the PyTorch fixtures written by `tools/make_fixtures.py`.
 *
 * @module
 */

import { readSafetensors } from "../../src/weights/mod.ts";
import type { Tensor } from "../../src/tensor.ts";

/** A fixture file: tensors by name and the JSON parameters in its metadata. */
export interface Fixtures {
  tensors: Map<string, Tensor>;
  cases: Map<string, Record<string, unknown>>;
}

/** Reads `tests/fixtures/<name>.safetensors`. */
export async function loadFixtures(name: string): Promise<Fixtures> {
  const bytes = await Deno.readFile(new URL(`../fixtures/${name}.safetensors`, import.meta.url));
  const { tensors, metadata } = readSafetensors(bytes);
  const cases = new Map(Object.entries(metadata).map(([k, v]) => [k, JSON.parse(v)]));
  return { tensors, cases };
}
