/**
 * A Cloudflare-Workers-like runtime: Wasm code generation from bytes is
 * disallowed by the embedder, and the kernels arrive as a precompiled
 * `WebAssembly.Module` (there, `import kernels from "./kernels-relaxed.wasm"`).
 * Here the module is compiled from the bytes on stdin *before* compilation is
 * forbidden (standing in for the platform's deploy-time compile); then
 * `WebAssembly.compile`, `compileStreaming`, `instantiate(bytes)`,
 * `instantiateStreaming` and `new WebAssembly.Module(bytes)` throw, the
 * library is imported and must run with `wasmModule`. Prints one JSON line.
 * Run by `tests/edge_entry.test.ts`, with no permission (stdin needs none):
 *
 * ```sh
 * deno run --no-prompt tools/edge/precompiled.ts 1 < src/backend/wasm/kernels/kernels-relaxed.wasm
 * ```
 *
 * The argument is the thread count or `default`.
 *
 * @module
 */

const bytes = new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer());
const precompiled = new WebAssembly.Module(bytes);

const refusals: string[] = [];
const disallowed = (what: string) => {
  refusals.push(what);
  return new WebAssembly.CompileError(`${what}: Wasm code generation disallowed by embedder`);
};
const wasm = WebAssembly as unknown as Record<string, unknown>;
wasm.compile = () => Promise.reject(disallowed("WebAssembly.compile"));
wasm.compileStreaming = () => Promise.reject(disallowed("WebAssembly.compileStreaming"));
wasm.instantiateStreaming = () => Promise.reject(disallowed("WebAssembly.instantiateStreaming"));
const instantiate = WebAssembly.instantiate;
wasm.instantiate = (source: unknown, imports?: WebAssembly.Imports) =>
  source instanceof WebAssembly.Module
    ? instantiate(source, imports)
    : Promise.reject(disallowed("WebAssembly.instantiate(bytes)"));
wasm.Module = new Proxy(WebAssembly.Module, {
  construct() {
    throw disallowed("new WebAssembly.Module(bytes)");
  },
});

const { GoogLeNet } = await import("../../mod.ts");
const { deterministicInput } = await import("../deterministic.ts");

const threadsArg = Deno.args[0] ?? "1";
const model = await GoogLeNet.create({
  wasmModule: precompiled,
  ...(threadsArg === "default" ? {} : { threads: Number(threadsArg) }),
});
const logits = await model.forward(deterministicInput("edge", [1, 3, 224, 224]));
const report = {
  threads: model.backend.threads,
  kind: model.backend.kind,
  refusals,
  logits: Array.from((logits as { data: Float32Array }).data),
};
await model.dispose();
console.log(JSON.stringify(report));
