/**
 * Builds the kernel binaries from `asm/` with the AssemblyScript compiler and
 * binaryen's optimiser (the passes `wasm-opt -O3` runs), byte for byte
 * reproducibly: the same sources and pinned tool versions give the same files.
 *
 * Four variants: plain SIMD or relaxed SIMD (fused multiply-add), each with a
 * private or a shared (threads) imported memory.
 *
 *   deno task build            writes src/backend/wasm/kernels/*.wasm
 *   deno task build --check    exits 1 if a committed binary is stale
 *
 * @module
 */

import asc from "assemblyscript/asc";
import binaryen from "binaryen";

/** One kernel binary: its file name and the compiler flags that make it. */
export interface KernelTarget {
  /** File name under `src/backend/wasm/kernels/`. */
  file: string;
  /** Extra `asc` flags for this variant. */
  flags: string[];
}

/** The binaries `deno task build` makes. */
export const KERNEL_TARGETS: readonly KernelTarget[] = [
  { file: "kernels-simd.wasm", flags: [] },
  { file: "kernels-relaxed.wasm", flags: ["--enable", "relaxed-simd"] },
  {
    file: "kernels-simd-threads.wasm",
    flags: ["--enable", "threads", "--sharedMemory", "--maximumMemory", "65536"],
  },
  {
    file: "kernels-relaxed-threads.wasm",
    flags: [
      "--enable",
      "relaxed-simd",
      "--enable",
      "threads",
      "--sharedMemory",
      "--maximumMemory",
      "65536",
    ],
  },
];

const ROOT = new URL("../", import.meta.url);
const OUT_DIR = new URL("src/backend/wasm/kernels/", ROOT);

/** Compiles and optimises one target; returns the final bytes. */
export async function buildKernel(target: KernelTarget): Promise<Uint8Array> {
  let binary: Uint8Array | undefined;
  const stderr: string[] = [];
  const { error } = await asc.main([
    "asm/index.ts",
    "--outFile",
    "kernels.wasm",
    "--enable",
    "simd",
    ...target.flags,
    "--runtime",
    "stub",
    "--importMemory",
    "--noExportMemory",
    "--initialMemory",
    "0",
    "--use",
    "abort=",
    "--optimizeLevel",
    "3",
    "--shrinkLevel",
    "0",
    "--noAssert",
  ], {
    readFile: (name: string, dir: string) => {
      try {
        return Deno.readTextFileSync(new URL(`${dir}/${name}`.replace(/^\.\//, ""), ROOT));
      } catch {
        return null;
      }
    },
    writeFile: (name: string, contents: Uint8Array | string) => {
      if (name.endsWith(".wasm") && contents instanceof Uint8Array) binary = contents;
    },
    listFiles: () => [],
    stderr: { write: (s: string) => stderr.push(s) },
    stdout: { write: () => {} },
  });
  if (error || !binary) {
    throw new Error(`AssemblyScript failed for ${target.file}: ${error}\n${stderr.join("")}`);
  }
  const module = binaryen.readBinary(binary);
  try {
    module.setFeatures(binaryen.Features.All);
    binaryen.setOptimizeLevel(3);
    binaryen.setShrinkLevel(0);
    binaryen.setDebugInfo(false);
    module.optimize();
    module.runPasses(["strip-debug", "strip-producers", "strip-target-features"]);
    if (!module.validate()) throw new Error(`binaryen rejected ${target.file}`);
    return module.emitBinary();
  } finally {
    module.dispose();
  }
}

async function main(args: string[]): Promise<number> {
  const check = args.includes("--check");
  let stale = 0;
  for (const target of KERNEL_TARGETS) {
    const bytes = await buildKernel(target);
    const url = new URL(target.file, OUT_DIR);
    if (check) {
      let committed: Uint8Array | null = null;
      try {
        committed = await Deno.readFile(url);
      } catch { /* missing counts as stale */ }
      const same = committed !== null && committed.length === bytes.length &&
        committed.every((b, i) => b === bytes[i]);
      console.log(`${same ? "fresh" : "STALE"} ${target.file} (${bytes.length} bytes)`);
      if (!same) stale++;
    } else {
      await Deno.mkdir(OUT_DIR, { recursive: true });
      await Deno.writeFile(url, bytes);
      console.log(`wrote ${target.file} (${bytes.length} bytes)`);
    }
  }
  if (stale > 0) {
    console.error(`${stale} kernel binaries are stale: run \`deno task build\` and commit them`);
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
