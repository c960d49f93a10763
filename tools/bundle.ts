/**
 * Builds the edge worker: `deno bundle --platform browser` of
 * `tools/edge/worker.ts` (the library and a request handler) into one
 * minified ES module, the kernel binary beside it (bound by the runtime as a
 * precompiled module), a four-line main module for Cloudflare's workerd, and
 * a classic script for Vercel's edge-runtime. Prints the sizes.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-run --allow-env tools/bundle.ts [OUT_DIR] [--isa simd]
 * ```
 *
 * `OUT_DIR` defaults to `dist/edge`. Used by `tests/edge_workerd.test.ts` and
 * `tests/edge_vercel.test.ts`.
 *
 * @module
 */

/** The kernel build bound to the worker. */
export type EdgeIsa = "relaxed" | "simd";

/** Options of {@linkcode bundleEdge}. */
export interface BundleEdgeOptions {
  /** Folder to write into (created; files of the same names are replaced). */
  outDir: string;
  /** Which kernel binary to copy (default `"relaxed"`, fused multiply-add). */
  isa?: EdgeIsa;
  /** Kill `deno bundle` after this many milliseconds (default 120 000). */
  timeoutMs?: number;
}

/** What {@linkcode bundleEdge} wrote, as absolute paths, and the sizes measured. */
export interface EdgeBundle {
  /** `googlenet.js`: the library and the handler, one minified ES module. */
  library: string;
  /** `worker.js`: workerd's main module (imports the two others). */
  workerdMain: string;
  /** `vercel.js`: the same handler as a classic script registering a `fetch` listener. */
  vercelScript: string;
  /** `kernels.wasm`: the kernel binary. */
  kernels: string;
  /** Bytes: the minified library and its gzip, the kernels and their gzip. */
  sizes: { library: number; libraryGzip: number; kernels: number; kernelsGzip: number };
}

const ROOT = new URL("../", import.meta.url);

/**
 * workerd's main module: the Wasm module import is resolved by the runtime
 * (a `wasm` module in the config), the weights come from the `WEIGHTS`
 * service binding (a disk directory), file name in `WEIGHTS_FILE`.
 */
export const WORKERD_MAIN = `import kernels from "./kernels.wasm";
import { handleRequest } from "./googlenet.js";
export default {
  fetch: (request, env) =>
    handleRequest(request, {
      wasmModule: kernels,
      weights: () => env.WEIGHTS.fetch("http://weights/" + env.WEIGHTS_FILE),
    }),
};
`;

async function gzipSize(bytes: Uint8Array<ArrayBuffer>): Promise<number> {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  return (await new Response(stream).arrayBuffer()).byteLength;
}

async function denoBundle(args: string[], timeoutMs: number): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "browser", "--minify", ...args],
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, timeoutMs);
  const out = await child.output().finally(() => clearTimeout(timer));
  if (!out.success) {
    throw new Error(
      `deno bundle ${args.join(" ")} failed (exit ${out.code}, signal ${out.signal}): ` +
        new TextDecoder().decode(out.stderr).slice(-2000),
    );
  }
}

/**
 * Bundles the edge worker into `options.outDir`.
 *
 * @param options Where to write and which kernels.
 * @returns The files written and their sizes.
 *
 * @example
 * ```ts ignore
 * import { bundleEdge } from "./bundle.ts";
 * const bundle = await bundleEdge({ outDir: await Deno.makeTempDir() });
 * console.log(bundle.sizes.libraryGzip < 100_000); // true
 * ```
 */
export async function bundleEdge(options: BundleEdgeOptions): Promise<EdgeBundle> {
  const outDir = options.outDir.replace(/\/+$/, "");
  const timeoutMs = options.timeoutMs ?? 120_000;
  await Deno.mkdir(outDir, { recursive: true });
  const library = `${outDir}/googlenet.js`;
  const vercelScript = `${outDir}/vercel.js`;
  const kernels = `${outDir}/kernels.wasm`;
  const workerdMain = `${outDir}/worker.js`;
  await denoBundle(["--format", "esm", "-o", library, "tools/edge/worker.ts"], timeoutMs);
  await denoBundle(
    ["--format", "iife", "-o", vercelScript, "tools/edge/vercel_entry.ts"],
    timeoutMs,
  );
  const isa = options.isa ?? "relaxed";
  const wasm = await Deno.readFile(new URL(`src/backend/wasm/kernels/kernels-${isa}.wasm`, ROOT));
  await Deno.writeFile(kernels, wasm);
  await Deno.writeTextFile(workerdMain, WORKERD_MAIN);
  const js = await Deno.readFile(library);
  return {
    library,
    workerdMain,
    vercelScript,
    kernels,
    sizes: {
      library: js.length,
      libraryGzip: await gzipSize(js),
      kernels: wasm.length,
      kernelsGzip: await gzipSize(wasm),
    },
  };
}

if (import.meta.main) {
  const isaAt = Deno.args.indexOf("--isa");
  const isa = isaAt >= 0 ? Deno.args[isaAt + 1] : "relaxed";
  if (isa !== "relaxed" && isa !== "simd") {
    console.error(`Unknown --isa ${isa}: expected relaxed or simd`);
    Deno.exit(2);
  }
  const positional = Deno.args.filter((a, i) =>
    !a.startsWith("--") && Deno.args[i - 1] !== "--isa"
  );
  const outDir = positional[0] ?? new URL("dist/edge", ROOT).pathname;
  const bundle = await bundleEdge({ outDir, isa });
  const kb = (n: number) => `${(n / 1000).toFixed(1)} KB`;
  const { sizes } = bundle;
  console.log(`${bundle.library}: ${kb(sizes.library)} minified, ${kb(sizes.libraryGzip)} gzip`);
  console.log(`${bundle.kernels}: ${kb(sizes.kernels)}, ${kb(sizes.kernelsGzip)} gzip`);
  console.log(`${bundle.workerdMain}: workerd's main module`);
  console.log(`${bundle.vercelScript}: a classic script for edge-runtime`);
}
