/**
 * The JPEG kernels on Wasm SIMD (`asm/image/jpeg.ts`, embedded as base64):
 * compiled once, synchronously, on first use; `undefined` where the runtime
 * cannot compile Wasm at run time (Cloudflare Workers, Vercel Edge) or lacks
 * SIMD, and the decoder then runs its TypeScript path, which gives the same
 * bytes.
 *
 * @module
 */

import { WASM_BASE64 } from "./kernels_wasm.ts";

/** The exports of the JPEG kernel binary (byte addresses into its imported memory). */
export interface JpegKernels {
  /** islow IDCT of a component's blocks (see `asm/image/jpeg.ts`). */
  idct_islow_blocks(
    coef: number,
    paddedBlocksWide: number,
    blocksWide: number,
    blocksHigh: number,
    quant: number,
    out: number,
    stride: number,
    scratch: number,
  ): void;
  /** Upsampling and colour conversion of a whole image from component descriptors. */
  convert_image(desc: number, space: number, out: number, width: number, height: number): void;
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
 * import { jpegKernels } from "./wasm.ts";
 * const kernels = jpegKernels(new WebAssembly.Memory({ initial: 1 }));
 * console.log(typeof kernels?.convert_image); // "function"
 * ```
 */
export function jpegKernels(memory: WebAssembly.Memory): JpegKernels | undefined {
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
  return instance.exports as unknown as JpegKernels;
}
