/**
 * The compiled kernel binaries (built from `asm/` by `deno task build`) and
 * their exports. The binary is chosen at run time: relaxed SIMD (fused
 * multiply-add) when the engine validates it, plain SIMD otherwise; the
 * `-threads` builds import a shared memory.
 *
 * @module
 */

import { BackendError } from "../../errors.ts";

/** `gemm_bias` / `gemm_bias_relu`: rows [m0, m1) x panels [p0, p1) of C = A x B + bias. */
export type GemmKernel = (
  n: number,
  k: number,
  a: number,
  lda: number,
  w: number,
  c: number,
  ldc: number,
  m0: number,
  m1: number,
  p0: number,
  p1: number,
) => void;

/**
 * `winograd_f4x3_bias_relu` / `winograd_f2x5_bias_relu` / `winograd_f2x3_bias_relu`: output tiles [t0, t1)
 * of a stride-1 "same" 3x3 or 5x5 convolution with bias and ReLU.
 */
export type WinogradKernel = (
  x: number,
  xstride: number,
  h: number,
  w: number,
  c: number,
  u: number,
  oc: number,
  y: number,
  ystride: number,
  scratch: number,
  t0: number,
  t1: number,
) => void;

/**
 * `maxpool2d` / `avgpool2d`: output rows [r0, r1) of N * OH, with
 * `maxpool2d_scratch_bytes(w, c)` of scratch (average pools ignore it).
 */
export type PoolKernel = (
  x: number,
  xstride: number,
  h: number,
  w: number,
  c: number,
  k: number,
  s: number,
  p: number,
  oh: number,
  ow: number,
  y: number,
  ystride: number,
  scratch: number,
  r0: number,
  r1: number,
) => void;

/** The kernel exports (byte addresses, strides in floats); see `asm/`. */
export interface KernelExports {
  gemm_bias: GemmKernel;
  gemm_bias_relu: GemmKernel;
  conv2d_bias_relu(
    x: number,
    xstride: number,
    h: number,
    w: number,
    c: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    ph: number,
    pw: number,
    oh: number,
    ow: number,
    wp: number,
    oc: number,
    y: number,
    ystride: number,
    scratch: number,
    m0: number,
    m1: number,
    p0: number,
    p1: number,
  ): void;
  conv2d_scratch_bytes(k: number): number;
  winograd_f4x3_bias_relu: WinogradKernel;
  winograd_f2x5_bias_relu: WinogradKernel;
  winograd_f2x3_bias_relu: WinogradKernel;
  winograd_scratch_bytes(c: number, oc: number): number;
  winograd_block_tiles(nn: number, c: number, oc: number): number;
  maxpool2d: PoolKernel;
  maxpool2d_scratch_bytes(w: number, c: number): number;
  avgpool2d: PoolKernel;
  adaptive_avgpool2d(
    x: number,
    xstride: number,
    h: number,
    w: number,
    c: number,
    oh: number,
    ow: number,
    y: number,
    ystride: number,
    r0: number,
    r1: number,
  ): void;
  dropout(x: number, n: number, p: number, seed: number): void;
  relu(x: number, n: number): void;
  softmax(x: number, rows: number, cols: number): void;
  fma_peak(iters: number, at: number): number;
  GEMM_MR: WebAssembly.Global;
  GEMM_NR: WebAssembly.Global;
}

/** Which instruction set a kernel binary uses. */
export type KernelIsa = "relaxed-simd" | "simd";

/** A compiled kernel module and what it needs. */
export interface CompiledKernels {
  /** The compiled module (can be posted to workers). */
  readonly module: WebAssembly.Module;
  /** Whether it imports a shared memory (the threads build). */
  readonly shared: boolean;
  /** Its instruction set, when known. */
  readonly isa: KernelIsa | "unknown";
}

/** URL of one kernel binary next to this module. */
export function kernelUrl(isa: KernelIsa, shared: boolean): URL {
  const name = `kernels-${isa === "relaxed-simd" ? "relaxed" : "simd"}${
    shared ? "-threads" : ""
  }.wasm`;
  return new URL(`./kernels/${name}`, import.meta.url);
}

async function fetchBytes(url: URL): Promise<Uint8Array<ArrayBuffer>> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (cause) {
    throw new BackendError(
      `Cannot fetch the kernel binary ${url.href}: grant read/net access to it, or pass a ` +
        "precompiled module as `wasmModule`",
      { cause },
    );
  }
  if (!response.ok) {
    throw new BackendError(`Cannot fetch the kernel binary ${url.href}: HTTP ${response.status}`);
  }
  return new Uint8Array(await response.arrayBuffer());
}

const cache = new Map<string, Promise<CompiledKernels>>();

/**
 * Compiles the best kernel binary this engine validates (cached per process).
 *
 * @param shared Whether to take the threads build (imports a shared memory).
 */
export function compileKernels(shared: boolean): Promise<CompiledKernels> {
  const key = String(shared);
  let entry = cache.get(key);
  if (!entry) {
    entry = (async () => {
      const relaxed = await fetchBytes(kernelUrl("relaxed-simd", shared));
      const isa: KernelIsa = WebAssembly.validate(relaxed) ? "relaxed-simd" : "simd";
      const bytes = isa === "relaxed-simd" ? relaxed : await fetchBytes(kernelUrl("simd", shared));
      if (!WebAssembly.validate(bytes)) {
        throw new BackendError(
          "This engine cannot run the kernels: WebAssembly SIMD (v128) is required",
        );
      }
      return { module: await WebAssembly.compile(bytes), shared, isa };
    })();
    entry.catch(() => cache.delete(key));
    cache.set(key, entry);
  }
  return entry;
}

/** Describes a caller-supplied precompiled module (edge runtimes). */
export function describeModule(module: WebAssembly.Module): CompiledKernels {
  if (!(module instanceof WebAssembly.Module)) {
    throw new BackendError(
      "`wasmModule` must be a WebAssembly.Module compiled from a kernels-*.wasm file",
    );
  }
  const memory = WebAssembly.Module.imports(module).find((i) => i.kind === "memory");
  const exports = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
  if (!memory || !exports.has("conv2d_bias_relu") || !exports.has("gemm_bias")) {
    throw new BackendError(
      "`wasmModule` is not a googlenet-wasm kernel module: expected one compiled from " +
        "src/backend/wasm/kernels/kernels-*.wasm",
    );
  }
  // A threads build cannot be told apart by its imports' descriptors here; try a private memory first.
  return { module, shared: false, isa: "unknown" };
}

/** Instantiates `module` over `memory`. */
export function instantiateKernels(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
): KernelExports {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return instance.exports as unknown as KernelExports;
}
