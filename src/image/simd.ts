/**
 * The image kernels on Wasm SIMD (`asm/image/`, their own binary embedded as
 * base64 in `simd_wasm.ts`): the JPEG decoder's IDCT, upsampling and colour
 * conversion, and Pillow's resampling passes. Compiled once, synchronously,
 * on first use; `undefined` where the runtime cannot compile Wasm at run
 * time (Cloudflare Workers, Vercel Edge) or lacks SIMD, and the callers then
 * run their TypeScript paths, which give the same bytes.
 *
 * @module
 */

import { WASM_BASE64 } from "./simd_wasm.ts";

/** The exports of the image kernel binary (byte addresses into its imported memory). */
export interface ImageKernels {
  /** islow IDCT of a component's blocks (see `asm/image/jpeg.ts`). */
  idct_islow_blocks(
    coef: number,
    paddedBlocksWide: number,
    blocksWide: number,
    blocksHigh: number,
    quant: number,
    out: number,
    stride: number,
    dc: number,
    marks: number,
  ): void;
  /** libjpeg's reduced IDCT (4x4, 2x2 or 1x1 samples per block) of a component's blocks. */
  idct_reduced_blocks(
    coef: number,
    paddedBlocksWide: number,
    blocksWide: number,
    blocksHigh: number,
    quant: number,
    out: number,
    stride: number,
    size: number,
    scratch: number,
    dcOnly: boolean,
    dc: number,
    marks: number,
  ): void;
  /** Upsampling and colour conversion of rows `top` to `bottom`, columns `left` to `right`. */
  convert_image(
    desc: number,
    space: number,
    out: number,
    width: number,
    top: number,
    bottom: number,
    left: number,
    right: number,
  ): void;
  /** Pillow's horizontal 8-bit resampling pass over RGB rows (see `asm/image/resize.ts`). */
  resample_horizontal(
    src: number,
    stride: number,
    rows: number,
    dst: number,
    outWidth: number,
    bounds: number,
    weights: number,
    pairs: number,
  ): void;
  /**
   * Huffman decoding of one scan (see `asm/image/huffman.ts`): returns the
   * offset where its data ends, or a negative error code.
   */
  decode_scan(start: number, length: number, offset: number, descriptor: number): number;
  /**
   * ToTensor and Normalize of RGB (3) or grey (1 channel) pixels into float32 CHW planes (see
   * `asm/image/normalize.ts`).
   */
  normalize_to_chw(
    src: number,
    pixels: number,
    channels: number,
    out: number,
    mean0: number,
    mean1: number,
    mean2: number,
    std0: number,
    std1: number,
    std2: number,
  ): void;
  /** Pillow's horizontal 8-bit resampling pass over grey rows (see `asm/image/resize.ts`). */
  resample_horizontal_grey(
    src: number,
    stride: number,
    rows: number,
    dst: number,
    outWidth: number,
    bounds: number,
    weights: number,
    chunks: number,
  ): void;
  /** Pillow's vertical 8-bit resampling pass (see `asm/image/resize.ts`). */
  resample_vertical(
    src: number,
    rowBytes: number,
    dst: number,
    outHeight: number,
    bounds: number,
    weights: number,
    pairs: number,
  ): void;
}

let compiled: WebAssembly.Module | null | undefined;

/**
 * Instantiates the kernels over `memory`, or returns `undefined` when Wasm
 * SIMD cannot be compiled here.
 *
 * @param memory The linear memory the kernels work in.
 * @returns The kernels, or `undefined`.
 *
 * @example
 * ```ts
 * import { imageKernels } from "./simd.ts";
 * const kernels = imageKernels(new WebAssembly.Memory({ initial: 1 }));
 * console.log(typeof kernels?.convert_image); // "function"
 * ```
 */
export function imageKernels(memory: WebAssembly.Memory): ImageKernels | undefined {
  if (compiled === undefined) {
    try {
      const text = atob(WASM_BASE64);
      const bytes = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
      compiled = new WebAssembly.Module(bytes);
    } catch {
      compiled = null; // no run-time compilation or no SIMD: the TypeScript path
    }
  }
  if (compiled === null) return undefined;
  const instance = new WebAssembly.Instance(compiled, { env: { memory } });
  return instance.exports as unknown as ImageKernels;
}

/** Largest memory kept between calls by {@linkcode kernelArena}: 256 MiB. */
const KEEP_LIMIT = 256 * 2 ** 20;
let kept: { memory: WebAssembly.Memory; kernels: ImageKernels } | undefined;
/** Calls of {@linkcode kernelArena} so far: a resident image is valid until the next one. */
let generation = 0;
let resident:
  | { memory: WebAssembly.Memory; data: Uint8Array; offset: number; generation: number }
  | undefined;

/**
 * Records that the kept memory holds a copy of `data` at `offset` (16 bytes
 * of slack after it), as the last thing a kernel wrote: until the next
 * {@linkcode kernelArena} call, a kernel may read it there instead of having
 * it copied in again ({@linkcode residentOffset}).
 *
 * @param memory The memory the kernels wrote `data` in.
 * @param data The JavaScript copy of those bytes, as returned to the caller.
 * @param offset Where the bytes are in `memory`.
 *
 * @example
 * ```ts
 * import { kernelArena, markResident, residentOffset } from "./simd.ts";
 * const arena = kernelArena(1 << 16);
 * if (arena) {
 *   const data = new Uint8Array(arena.memory.buffer, 1024, 48).slice();
 *   markResident(arena.memory, data, 1024);
 *   console.log(residentOffset(data)?.offset); // 1024
 * }
 * ```
 */
export function markResident(memory: WebAssembly.Memory, data: Uint8Array, offset: number): void {
  resident = { memory, data, offset, generation };
}

/**
 * Where a kernel memory still holds `data` (see {@linkcode markResident}),
 * or `undefined` when it does not or a kernel call came in between. The
 * caller checks that {@linkcode kernelArena} gives it that memory.
 *
 * @param data A JavaScript array.
 * @returns The memory and the byte offset of its copy there, or `undefined`.
 *
 * @example
 * ```ts
 * import { residentOffset } from "./simd.ts";
 * console.log(residentOffset(new Uint8Array(3))); // undefined
 * ```
 */
export function residentOffset(
  data: Uint8Array,
): { memory: WebAssembly.Memory; offset: number } | undefined {
  return resident?.data === data && resident.generation === generation ? resident : undefined;
}

/**
 * The kernels over a memory of at least `bytes` bytes. Memories up to 256 MiB
 * are kept and reused by the next call (growing as needed), which saves the
 * page faults of fresh memory on every image; larger ones are made for the
 * call. Its contents are whatever the last call left: callers clear what they
 * read before writing. Views of the memory made before a call are stale
 * after it (the memory may grow).
 *
 * @param bytes Bytes the caller needs.
 * @returns The memory and kernels, or `undefined` when either is unavailable here.
 *
 * @example
 * ```ts
 * import { kernelArena } from "./simd.ts";
 * const arena = kernelArena(1 << 20);
 * console.log((arena?.memory.buffer.byteLength ?? 1 << 20) >= 1 << 20); // true
 * ```
 */
export function kernelArena(
  bytes: number,
): { memory: WebAssembly.Memory; kernels: ImageKernels } | undefined {
  generation++;
  if (kept && kept.memory.buffer.byteLength >= bytes) return kept;
  const pages = Math.max(1, Math.ceil(bytes / 65536)); // the binary declares a 1-page minimum
  try {
    if (bytes > KEEP_LIMIT) {
      const memory = new WebAssembly.Memory({ initial: pages });
      const kernels = imageKernels(memory);
      return kernels && { memory, kernels };
    }
    if (kept) {
      kept.memory.grow(pages - kept.memory.buffer.byteLength / 65536);
      return kept;
    }
    const memory = new WebAssembly.Memory({ initial: pages });
    const kernels = imageKernels(memory);
    kept = kernels && { memory, kernels };
    return kept;
  } catch {
    return undefined; // no memory that large here
  }
}
