/**
 * WebGPU plumbing of the backend: finding an adapter, telling hardware from
 * software adapters, requesting a device with the adapter's largest buffer
 * limits, and turning WebGPU's asynchronous error reporting (error scopes,
 * compilation messages, device loss) into {@linkcode BackendError}s.
 *
 * @module
 */

import { BackendError } from "../../errors.ts";

/** What the backend needs to know about an adapter (a subset of `GPUAdapterInfo`). */
export interface AdapterDescription {
  /** Vendor name or PCI id (`"nvidia"`, `"65541"`). */
  readonly vendor: string;
  /** GPU family (`"hopper"`, `""`). */
  readonly architecture: string;
  /** Device name or id. */
  readonly device: string;
  /** Driver's description (`"llvmpipe (LLVM 15.0.6, 256 bits)"`). */
  readonly description: string;
  /** True for a fallback (usually software) adapter. */
  readonly isFallbackAdapter: boolean;
}

/**
 * The identifying strings of `adapter` (from `adapter.info`, and the older
 * `adapter.isFallbackAdapter` where a runtime still has it).
 *
 * @param adapter A WebGPU adapter.
 * @returns Its vendor, architecture, device, description and fallback flag.
 *
 * @example
 * ```ts
 * import { describeAdapter } from "./device.ts";
 * const adapter = await navigator.gpu?.requestAdapter();
 * if (adapter) console.log(describeAdapter(adapter).description);
 * ```
 */
export function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const info = (adapter as { info?: Partial<AdapterDescription> }).info ?? {};
  const legacy = (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter;
  return {
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    device: info.device ?? "",
    description: info.description ?? "",
    isFallbackAdapter: Boolean(info.isFallbackAdapter ?? legacy),
  };
}

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|warp|softpipe/i;

/**
 * Whether an adapter renders in software (a CPU rasteriser such as Mesa's
 * llvmpipe/lavapipe, SwiftShader or Microsoft WARP), where the Wasm backend
 * is faster: it is a fallback adapter, or a software name appears in its
 * vendor, architecture, device or description.
 *
 * @param info The adapter's description (see {@linkcode describeAdapter}).
 * @returns True for a software adapter.
 *
 * @example
 * ```ts
 * import { isSoftwareAdapter } from "./device.ts";
 * console.log(isSoftwareAdapter({
 *   vendor: "mesa", architecture: "", device: "", isFallbackAdapter: false,
 *   description: "llvmpipe (LLVM 15.0.6, 256 bits)",
 * })); // true
 * ```
 */
export function isSoftwareAdapter(info: AdapterDescription): boolean {
  if (info.isFallbackAdapter) return true;
  return [info.vendor, info.architecture, info.device, info.description].some((s) =>
    SOFTWARE.test(s)
  );
}

/**
 * Requests an adapter, or returns null when the runtime has no WebGPU or no adapter.
 *
 * @param options Passed to `navigator.gpu.requestAdapter`.
 * @returns The adapter, or null.
 *
 * @example
 * ```ts
 * import { findAdapter } from "./device.ts";
 * console.log((await findAdapter()) !== null);
 * ```
 */
export async function findAdapter(options?: GPURequestAdapterOptions): Promise<GPUAdapter | null> {
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  if (!gpu) return null;
  try {
    return await gpu.requestAdapter(options);
  } catch {
    return null;
  }
}

/** What {@linkcode probeAdapter} found: an adapter, or why there is none. */
export type AdapterProbe =
  | { readonly adapter: GPUAdapter; readonly reason: null }
  | { readonly adapter: null; readonly reason: string };

/**
 * Looks for a WebGPU adapter and says why there is none (for messages, and
 * for tests that must be ignored without one).
 *
 * @param options Passed to `navigator.gpu.requestAdapter`.
 * @returns The adapter, or null and the reason.
 *
 * @example
 * ```ts
 * import { probeAdapter } from "./device.ts";
 * const { adapter, reason } = await probeAdapter();
 * if (!adapter) console.log(reason);
 * ```
 */
export async function probeAdapter(options?: GPURequestAdapterOptions): Promise<AdapterProbe> {
  if (!(globalThis.navigator as { gpu?: GPU } | undefined)?.gpu) {
    return { adapter: null, reason: "this runtime has no WebGPU (navigator.gpu is missing)" };
  }
  const adapter = await findAdapter(options);
  if (!adapter) {
    return {
      adapter: null,
      reason:
        "navigator.gpu.requestAdapter() returned no adapter (no GPU or Vulkan/Metal/DX12 driver)",
    };
  }
  return { adapter, reason: null };
}

/**
 * Requests a device with the adapter's largest storage-buffer and buffer
 * sizes (the defaults, 128 MiB and 256 MiB, are smaller than a batch's arena).
 *
 * @param adapter The adapter.
 * @returns The device.
 * @throws {BackendError} When the adapter refuses the device.
 *
 * @example
 * ```ts
 * import { findAdapter, requestDevice } from "./device.ts";
 * const adapter = await findAdapter();
 * if (adapter) (await requestDevice(adapter)).destroy();
 * ```
 */
export async function requestDevice(adapter: GPUAdapter): Promise<GPUDevice> {
  const a = adapter.limits;
  try {
    return await adapter.requestDevice({
      label: "googlenet",
      requiredLimits: {
        maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
        maxBufferSize: a.maxBufferSize,
        maxComputeWorkgroupsPerDimension: a.maxComputeWorkgroupsPerDimension,
      },
    });
  } catch (cause) {
    throw new BackendError(`The WebGPU adapter refused to create a device: ${message(cause)}`, {
      cause,
    });
  }
}

/** The error scopes the backend watches around device work. */
const SCOPES: GPUErrorFilter[] = ["validation", "out-of-memory", "internal"];

/**
 * Runs `work` inside validation, out-of-memory and internal error scopes and
 * throws the first error any of them caught, as a {@linkcode BackendError}
 * that starts with `what`.
 *
 * @param device The device.
 * @param what What was being done, for the message ("Compiling the conv kernel").
 * @param work The device calls to watch (synchronous, or returning a promise).
 * @returns What `work` returned.
 * @throws {BackendError} When `work` throws or a scope caught an error.
 *
 * @example
 * ```ts
 * import { findAdapter, requestDevice, withErrorScopes } from "./device.ts";
 * const adapter = await findAdapter();
 * if (adapter) {
 *   const device = await requestDevice(adapter);
 *   await withErrorScopes(device, "Allocating", () => device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE }));
 *   device.destroy();
 * }
 * ```
 */
export async function withErrorScopes<T>(
  device: GPUDevice,
  what: string,
  work: () => T | Promise<T>,
): Promise<T> {
  for (const filter of SCOPES) device.pushErrorScope(filter);
  let result: T | undefined, failure: unknown = null;
  try {
    result = await work();
  } catch (cause) {
    failure = cause;
  }
  // Scopes pop in reverse order of pushing.
  const errors = [];
  for (let i = SCOPES.length - 1; i >= 0; i--) {
    errors.push(await device.popErrorScope().catch((e) => e as Error));
  }
  if (failure) {
    throw failure instanceof BackendError
      ? failure
      : new BackendError(`${what} failed: ${message(failure)}`, { cause: failure });
  }
  const error = errors.find((e) => e !== null);
  if (error) {
    const kind = error instanceof GPUOutOfMemoryError ? "ran out of GPU memory" : "failed";
    throw new BackendError(`${what} ${kind}: ${error.message}`, { cause: error });
  }
  return result as T;
}

/**
 * Compiles a WGSL compute shader and its pipeline; compilation errors
 * become a {@linkcode BackendError} carrying the WGSL messages with their lines.
 *
 * @param device The device.
 * @param label Name of the kernel, for messages.
 * @param code WGSL source with an entry point `main`.
 * @returns The pipeline, with an automatic layout.
 * @throws {BackendError} When the shader or pipeline does not compile.
 *
 * @example
 * ```ts
 * import { compilePipeline, findAdapter, requestDevice } from "./device.ts";
 * import { dropoutShader } from "./shaders.ts";
 * const adapter = await findAdapter();
 * if (adapter) {
 *   const device = await requestDevice(adapter);
 *   await compilePipeline(device, "dropout", dropoutShader());
 *   device.destroy();
 * }
 * ```
 */
export function compilePipeline(
  device: GPUDevice,
  label: string,
  code: string,
): Promise<GPUComputePipeline> {
  return withErrorScopes(device, `Compiling the WebGPU kernel "${label}"`, async () => {
    const module = device.createShaderModule({ label, code });
    const info = await module.getCompilationInfo?.();
    const errors = info?.messages.filter((m) => m.type === "error") ?? [];
    if (errors.length) {
      const lines = errors.map((m) => `line ${m.lineNum}:${m.linePos}: ${m.message.trim()}`);
      throw new BackendError(
        `Compiling the WebGPU kernel "${label}" failed: ${lines.join("; ")}`,
      );
    }
    return await device.createComputePipelineAsync({
      label,
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
  });
}

/**
 * The text of an error or rejection reason.
 *
 * @param error Anything thrown.
 * @returns Its message.
 *
 * @example
 * ```ts
 * import { message } from "./device.ts";
 * console.log(message(new Error("boom"))); // "boom"
 * ```
 */
export function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
