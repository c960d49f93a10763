/**
 * Runs the edge worker in Vercel's `edge-runtime` (the Edge Functions
 * runtime, hosted by Node): the script `vercel.js` built by `tools/bundle.ts`
 * is evaluated in an `EdgeRuntime` whose context may not compile Wasm
 * (`codeGeneration: { wasm: false }`, as Vercel Edge forbids it), the kernel
 * binary is compiled here, by the host, and given to the script as the global
 * `KERNELS` (Vercel compiles a `import kernels from "./kernels.wasm?module"` at
 * build time the same way), and the weights are served over loopback HTTP
 * (`WEIGHTS_URL`). The kernels are the first of the given binaries that this
 * Node validates (Node 20 has no relaxed SIMD). Prints one JSON line
 * `{"url": ..., "kernels": ...}` when it listens, then serves until killed.
 * Run by `tests/edge_vercel.test.ts`:
 *
 * ```sh
 * node tools/edge/vercel_host.mjs [--bridge-instanceof] EDGE_RUNTIME_DIR SCRIPT WEIGHTS_FILE KERNELS.wasm...
 * ```
 *
 * The module comes from the host's realm, as Next.js' sandbox passes
 * `?module` imports, so `module instanceof WebAssembly.Module` is false in the
 * context. `--bridge-instanceof` makes the context's `WebAssembly.Module`
 * accept it (as edge-runtime does for `Uint8Array`, `Error` and the others it
 * shares between the realms), for a library that checks with `instanceof`.
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import process from "node:process";
import { runInContext } from "node:vm";

const bridge = process.argv[2] === "--bridge-instanceof";
if (bridge) process.argv.splice(2, 1);
const [packageDir, scriptPath, weightsPath, ...kernelPaths] = process.argv.slice(2);
if (kernelPaths.length === 0) {
  console.error("Usage: node vercel_host.mjs EDGE_RUNTIME_DIR SCRIPT WEIGHTS_FILE KERNELS.wasm...");
  process.exit(2);
}
const { EdgeRuntime, runServer } = createRequire(`${packageDir}/package.json`)(packageDir);

const weights = await readFile(weightsPath);
const weightsServer = createServer((request, response) => {
  if (request.method !== "GET" || request.url !== "/weights.safetensors") {
    response.writeHead(404).end("Not found");
    return;
  }
  response.writeHead(200, {
    "content-type": "application/octet-stream",
    "content-length": String(weights.length),
  });
  response.end(weights);
});
await new Promise((resolve) => weightsServer.listen(0, "127.0.0.1", resolve));
const weightsUrl = `http://127.0.0.1:${weightsServer.address().port}/weights.safetensors`;

let kernelsPath = null, kernels = null;
for (const path of kernelPaths) {
  const bytes = await readFile(path);
  if (WebAssembly.validate(bytes)) {
    [kernelsPath, kernels] = [path, new WebAssembly.Module(bytes)];
    break;
  }
}
if (!kernels) {
  console.error(`Node ${process.version} validates none of ${kernelPaths.join(", ")}`);
  process.exit(3);
}
const runtime = new EdgeRuntime({
  codeGeneration: { strings: false, wasm: false },
  extend: (context) => {
    if (bridge) {
      runInContext(
        `Object.defineProperty(WebAssembly.Module, Symbol.hasInstance, {
          value: (v) => Object.prototype.toString.call(v) === "[object WebAssembly.Module]",
        });`,
        context,
      );
    }
    return Object.assign(context, { KERNELS: kernels, WEIGHTS_URL: weightsUrl });
  },
  initialCode: await readFile(scriptPath, "utf8"),
});
// What the context says to compiling the smallest Wasm module from bytes (it must refuse).
const compileFromBytes = runtime.evaluate(`(() => {
  try {
    new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
    return "allowed";
  } catch (e) {
    return String(e.message);
  }
})()`);
const server = await runServer({ runtime, host: "127.0.0.1", port: 0 });
const line = { url: server.url, kernels: kernelsPath, node: process.version, bridge };
console.log(JSON.stringify({ ...line, compileFromBytes }));
