/**
 * A minimal safetensors writer (F32 only) for the edge tests, which serve a
 * deterministic state dict as a weight file. Layout: u64 little-endian header
 * length, the JSON header (padded with spaces to a multiple of 8), then the
 * tensors' bytes back to back.
 *
 * @module
 */

import type { Tensor } from "../../src/tensor.ts";

/** Encodes `tensors` (in iteration order) as a safetensors file. */
export function writeSafetensors(
  tensors: ReadonlyMap<string, Tensor>,
  metadata: Record<string, string> = {},
): Uint8Array<ArrayBuffer> {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    header[name] = {
      dtype: "F32",
      shape: [...t.shape],
      data_offsets: [offset, offset + t.size * 4],
    };
    offset += t.size * 4;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    json = new TextEncoder().encode(JSON.stringify(header) + " ".repeat(padded - json.length));
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of tensors.values()) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.size * 4);
    out.set(bytes, at); // Float32Array is little-endian on every engine this targets.
    at += bytes.length;
  }
  return out;
}
