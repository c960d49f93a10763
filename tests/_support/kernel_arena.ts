/**
 * One instance of a kernel module over a fresh memory, with a bump allocator
 * and typed views: what the kernel-level tests (grad_kernels, gemm_grad) run
 * their cases in.
 *
 * @module
 */

import {
  instantiateKernels,
  type KernelExports,
  kernelUrl,
} from "../../src/backend/wasm/kernels.ts";

/** One instance over a fresh memory, with a bump allocator and typed views. */
export class KernelArena {
  readonly memory: WebAssembly.Memory;
  readonly k: KernelExports;
  #at = 256;
  constructor(module: WebAssembly.Module, initialPages = 256) {
    this.memory = new WebAssembly.Memory({ initial: initialPages });
    this.k = instantiateKernels(module, this.memory);
  }
  /** A 64-byte aligned block of `floats` floats, filled with `fill` (default NaN: unwritten). */
  alloc(floats: number, fill = Number.NaN): number {
    const at = this.#at;
    this.#at = Math.ceil((at + floats * 4 + 64) / 64) * 64;
    const pages = Math.ceil(this.#at / 65536) - this.memory.buffer.byteLength / 65536;
    if (pages > 0) this.memory.grow(pages);
    this.f32(at, floats).fill(fill);
    return at;
  }
  /** Copies `data` into a new block; returns its address. */
  put(data: ArrayLike<number>): number {
    const at = this.alloc(data.length);
    this.f32(at, data.length).set(data);
    return at;
  }
  f32(at: number, floats: number): Float32Array {
    return new Float32Array(this.memory.buffer, at, floats);
  }
  bits(at: number, floats: number): Uint32Array {
    return new Uint32Array(this.memory.buffer, at, floats).slice();
  }
}

const modules = new Map<string, WebAssembly.Module>();

/** A fresh arena on the non-threaded kernel module of `isa` (compiled once per process). */
export async function kernelArena(
  isa: "relaxed-simd" | "simd",
  initialPages = 256,
): Promise<KernelArena> {
  let module = modules.get(isa);
  if (!module) {
    module = new WebAssembly.Module(await Deno.readFile(kernelUrl(isa, false)));
    modules.set(isa, module);
  }
  return new KernelArena(module, initialPages);
}

/** xorshift values in [-scale, scale): the same every run. */
export function random(seed: number, n: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

/** Fails naming the first element whose bits differ. */
export function sameBits(a: Uint32Array, b: Uint32Array, what: string): void {
  if (a.length !== b.length) throw new Error(`${what}: ${a.length} elements vs ${b.length}`);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) throw new Error(`${what}: element ${i} differs (${a[i]} vs ${b[i]})`);
  }
}
