/**
 * One onnxruntime-web inference session behind a small interface, shared by
 * the Wasm peer's worker (`ort_web_worker.ts`) and the in-process WebGPU peer.
 *
 * @module
 */

/** Which onnxruntime-web execution provider to use. */
export type OrtWebProvider = "wasm" | "webgpu";

/** An open session. */
export interface OrtWebSession {
  /** Runs the model on one float32 input; resolves a copy of the first output. */
  run(data: Float32Array, shape: readonly number[]): Promise<Float32Array<ArrayBuffer>>;
  /** Releases the session. */
  release(): Promise<void>;
}

/**
 * Loads onnxruntime-web (the WebGPU build for `"webgpu"`: under Deno the
 * default export resolves to the Node build, which has the Wasm EP only),
 * fixes its thread count, which it reads once per realm when its Wasm module
 * first loads, and creates a session with all graph optimisations.
 *
 * @param model ONNX model bytes.
 * @param provider The execution provider.
 * @param threads `env.wasm.numThreads`.
 */
export async function openOrtWebSession(
  model: Uint8Array,
  provider: OrtWebProvider,
  threads: number,
): Promise<OrtWebSession> {
  const ort = provider === "webgpu"
    ? await import("onnxruntime-web/webgpu")
    : await import("onnxruntime-web");
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.simd = true;
  const session = await ort.InferenceSession.create(model, {
    executionProviders: [provider],
    graphOptimizationLevel: "all",
  });
  return {
    async run(data, shape) {
      const input = new ort.Tensor("float32", data, [...shape]);
      try {
        const outputs = await session.run({ [session.inputNames[0]]: input });
        const output = outputs[session.outputNames[0]];
        const values = ((await output.getData()) as Float32Array).slice();
        output.dispose();
        return values;
      } finally {
        input.dispose();
      }
    },
    release: () => session.release(),
  };
}
