/**
 * Loads the PyTorch fixtures written by `tools/make_fixtures.py`.
 *
 * @module
 */

import { Tensor } from "../../src/tensor.ts";

// TEMPORARY until src/weights/safetensors.ts lands: F32-only reader.
function readSafetensors(bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const tensors = new Map<string, Tensor>();
  for (
    const [k, v] of Object.entries(header) as [
      string,
      { shape: number[]; data_offsets: number[] },
    ][]
  ) {
    if (k === "__metadata__") continue;
    const [a, b] = v.data_offsets;
    tensors.set(k, new Tensor(new Float32Array(bytes.slice(8 + n + a, 8 + n + b).buffer), v.shape));
  }
  return { tensors, metadata: header.__metadata__ as Record<string, string> };
}

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
