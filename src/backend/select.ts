/**
 * Chooses and creates the backend a model runs on: `"wasm"`, `"webgpu"`, or
 * `"auto"`, which takes WebGPU only on a hardware adapter (on a software one,
 * such as Mesa's llvmpipe, the Wasm SIMD kernels are faster).
 *
 * @module
 */

import type { GemmKernel } from "./wasm/calibrate.ts";
import { BackendError } from "../errors.ts";
import type { Plan, WeightLayout } from "../graph/ops.ts";
import type { Backend, BackendKind } from "./backend.ts";
import { WasmBackend } from "./wasm/backend.ts";
import { WebGpuBackend } from "./webgpu/backend.ts";
import {
  type AdapterDescription,
  describeAdapter,
  isSoftwareAdapter,
  probeAdapter,
} from "./webgpu/device.ts";

export { type AdapterDescription, describeAdapter, isSoftwareAdapter };

/** Which backend to run on; `"auto"` picks WebGPU on a hardware adapter, else Wasm. */
export type BackendChoice = "auto" | "wasm" | "webgpu";

/** Options of {@linkcode createBackend}. */
export interface CreateBackendOptions {
  /** Floats of packed weights to reserve. */
  weightFloats: number;
  /** Wasm threads including the caller (ignored by WebGPU). */
  threads: number;
  /** A precompiled Wasm kernel module. */
  wasmModule?: WebAssembly.Module;
  /** Most bytes of Wasm memory to use. */
  memoryLimit: number;
  /** The Wasm backend may run on one thread when its workers cannot start. */
  threadsOptional?: boolean;
  /** A plan the first runs will likely use (the Wasm backend sizes its memory for it). */
  reserve?: Plan;
  /** The Wasm GEMM micro-kernel, or `"auto"` to calibrate (see calibrate.ts). */
  gemmKernel?: GemmKernel | "auto";
  /**
   * Lays the weights out for the backend being created (each backend's
   * kernels read their own forms); its `weightFloats` and `reserve` replace
   * the options'. Called again if `"auto"` falls back from WebGPU to Wasm.
   */
  layout?: (
    kind: BackendKind,
  ) => { weightFloats: number; reserve?: Plan; weightLayout?: WeightLayout };
}

/**
 * The decision of {@linkcode createBackend}, without creating anything.
 *
 * @param kind The requested backend.
 * @param adapter The adapter found, described, or null when there is none.
 * @param reason Why there is no adapter, for the error message.
 * @returns The backend to create.
 * @throws {BackendError} For `"webgpu"` without an adapter, or an unknown kind.
 *
 * @example
 * ```ts
 * import { decideBackend } from "./select.ts";
 * const llvmpipe = {
 *   vendor: "mesa", architecture: "", device: "", isFallbackAdapter: true,
 *   description: "llvmpipe (LLVM 15.0.6, 256 bits)",
 * };
 * console.log(decideBackend("auto", llvmpipe)); // "wasm"
 * console.log(decideBackend("webgpu", llvmpipe)); // "webgpu"
 * ```
 */
export function decideBackend(
  kind: BackendChoice,
  adapter: AdapterDescription | null,
  reason = "no adapter",
): "wasm" | "webgpu" {
  switch (kind) {
    case "wasm":
      return "wasm";
    case "webgpu":
      if (!adapter) {
        throw new BackendError(
          `Backend "webgpu" requested but no WebGPU adapter is available (${reason}): ` +
            `use backend "wasm" or "auto"`,
        );
      }
      return "webgpu";
    case "auto":
      return adapter && !isSoftwareAdapter(adapter) ? "webgpu" : "wasm";
    default:
      throw new BackendError(
        `backend must be "auto", "wasm" or "webgpu", got ${JSON.stringify(kind)}`,
      );
  }
}

/**
 * Creates the backend `kind` asks for. `"wasm"` never touches WebGPU;
 * `"webgpu"` fails without an adapter; `"auto"` uses WebGPU on a hardware
 * adapter and falls back to Wasm when there is none, when it is a software
 * one, or when the WebGPU device cannot be created. On Linux, `"auto"` asks
 * for an adapter only where {@linkcode worthProbing} says a hardware one can
 * exist (the probe is slow and, with Mesa, noisy).
 *
 * @param kind `"auto"`, `"wasm"` or `"webgpu"`.
 * @param options Weight size and the Wasm backend's options.
 * @returns The backend.
 * @throws {BackendError} For `"webgpu"` without an adapter, or when the backend cannot be created.
 *
 * @example
 * ```ts
 * import { createBackend } from "./select.ts";
 * const backend = await createBackend("auto", {
 *   weightFloats: 1024, threads: 1, memoryLimit: 1 << 30,
 * });
 * console.log(backend.kind); // "wasm" or "webgpu"
 * await backend.dispose();
 * ```
 */
export async function createBackend(
  kind: BackendChoice,
  options: CreateBackendOptions,
): Promise<Backend> {
  const wasm = () => {
    const laid = options.layout?.("wasm");
    return WasmBackend.create({
      weightFloats: laid ? laid.weightFloats : options.weightFloats,
      weightLayout: laid?.weightLayout,
      threads: options.threads,
      wasmModule: options.wasmModule,
      memoryLimit: options.memoryLimit,
      threadsOptional: options.threadsOptional,
      reserve: laid ? laid.reserve : options.reserve,
      gemmKernel: options.gemmKernel,
    });
  };
  if (kind === "wasm") return wasm();
  // "auto" only wants a hardware adapter: skip the probe where it would be
  // noisy and could only find a software one (see worthProbing).
  if (kind === "auto" && !worthProbing()) return wasm();
  const { adapter, reason } = await probeAdapter();
  const choice = decideBackend(kind, adapter && describeAdapter(adapter), reason ?? undefined);
  if (choice === "wasm") return wasm();
  try {
    const laid = options.layout?.("webgpu");
    const weightFloats = laid ? laid.weightFloats : options.weightFloats;
    return await WebGpuBackend.create({
      weightFloats,
      weightLayout: laid?.weightLayout,
      adapter: adapter!,
    });
  } catch (error) {
    if (kind === "auto" && error instanceof BackendError) return wasm();
    throw error;
  }
}

/** Device files of GPU drivers on Linux: DRM render nodes and cards, NVIDIA's, WSL's DirectX. */
const GPU_DEVICE_FILES = /^(renderD\d+|card\d+|nvidia\d+|nvidiactl|dxg)$/;

/**
 * Whether this machine can have a hardware GPU, judged from device files,
 * without WebGPU: on Linux a hardware adapter needs a GPU driver's device
 * file (`/dev/dri/renderD*` or `card*`, `/dev/nvidia*`, WSL's `/dev/dxg`).
 * Deno lets a program list `/dev` only with `--allow-all` (never prompting);
 * without it, and on other systems or runtimes, the answer is `undefined`.
 *
 * @returns True when a GPU device file exists, false when none does, undefined when it cannot tell.
 *
 * @example
 * ```ts
 * import { gpuDevicePresent } from "./select.ts";
 * console.log(gpuDevicePresent()); // false on a Linux VM without a GPU (with --allow-all)
 * ```
 */
export function gpuDevicePresent(): boolean | undefined {
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  if (deno?.build?.os !== "linux") return undefined;
  try {
    for (const dir of ["/dev", "/dev/dri"]) {
      let entries: Iterable<Deno.DirEntry>;
      try {
        entries = deno.readDirSync(dir);
      } catch (error) {
        if (error instanceof deno.errors.NotFound) continue;
        throw error;
      }
      for (const entry of entries) if (GPU_DEVICE_FILES.test(entry.name)) return true;
    }
    return false;
  } catch {
    return undefined;
  }
}

/**
 * Whether `backend: "auto"` asks WebGPU for an adapter. Everywhere but on
 * Linux under Deno, yes. On Linux, only where a hardware adapter can exist
 * and the probe stays quiet: a GPU device file is visible (see
 * {@linkcode gpuDevicePresent}), or, when `/dev` cannot be listed, the
 * process runs in a desktop session (`XDG_RUNTIME_DIR` set, read only with
 * the `env` permission). Otherwise the probe could only be noisy and slow:
 * Mesa's Vulkan drivers (lavapipe) print `error: XDG_RUNTIME_DIR is invalid
 * or not set in the environment.` twice without that variable, and the probe
 * blocks the thread 110-150 ms to find a software adapter that "auto" would
 * not use. `backend: "webgpu"` always probes.
 *
 * @returns True when "auto" should probe WebGPU.
 *
 * @example
 * ```ts
 * import { worthProbing } from "./select.ts";
 * console.log(worthProbing()); // false on a Linux server without a GPU
 * ```
 */
export function worthProbing(): boolean {
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  if (deno?.build?.os !== "linux") return true;
  const present = gpuDevicePresent();
  if (present !== undefined) return present;
  try {
    const env = { name: "env", variable: "XDG_RUNTIME_DIR" } as const;
    if (deno.permissions.querySync(env).state !== "granted") return false;
    return Boolean(deno.env.get("XDG_RUNTIME_DIR"));
  } catch {
    return false;
  }
}
