/**
 * The committed kernel binaries are what `deno task build` makes from `asm/`
 * today, byte for byte, and they have the shape the runtime relies on:
 * an imported memory (shared in the threads builds), no data segments.
 */

import assert from "node:assert/strict";
import { buildKernel, KERNEL_TARGETS } from "../tools/build_wasm.ts";

const dir = new URL("../src/backend/wasm/kernels/", import.meta.url);

for (const target of KERNEL_TARGETS) {
  Deno.test(`${target.file} is fresh: rebuilding asm/ gives the committed bytes`, async () => {
    const committed = await Deno.readFile(new URL(target.file, dir));
    const built = await buildKernel(target);
    assert.ok(
      committed.length === built.length && committed.every((b, i) => b === built[i]),
      `${target.file} is stale against asm/: run \`deno task build\` and commit the result`,
    );
  });
}

Deno.test("kernel binaries import their memory, have no data segments and stay small", async () => {
  for (const target of KERNEL_TARGETS) {
    const bytes = await Deno.readFile(new URL(target.file, dir));
    const module = new WebAssembly.Module(bytes);
    const imports = WebAssembly.Module.imports(module);
    assert.deepEqual(imports.map((i) => `${i.module}.${i.name}:${i.kind}`), ["env.memory:memory"]);
    // Section id 11 is the data section: re-applied at each instantiation, it would clobber shared memory.
    assert.equal(sectionIds(bytes).includes(11), false, `${target.file} has a data section`);
    // 60 KB before the second GEMM micro-kernel variant, the optimizer kernels and the faster repack (74 KB, 17 KB gzip);
    // 79 KB with the 7x7 weight-gradient path, 85 KB (20.6 KB gzip) with the Winograd transforms in registers,
    // 88.3 KB with the pool-gradient and conv1 band rewrites, 94.6 KB (24.4 KB gzip) with the 1x1 and
    // linear backward kernels (gemm_weight_grad, gemm_*_by_rows); 102.7 KB (26.9 KB gzip) with
    // pack_winograd's fast paths for finite taps (three transforms unrolled in registers: repack
    // 0.70 of its CPU time on 1 thread).
    assert.ok(bytes.length < 104 * 1024, `${target.file} is ${bytes.length} bytes`);
  }
});

function sectionIds(bytes: Uint8Array): number[] {
  const ids: number[] = [];
  let i = 8;
  while (i < bytes.length) {
    ids.push(bytes[i++]);
    let size = 0, shift = 0, b;
    do {
      b = bytes[i++];
      size |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    i += size;
  }
  return ids;
}
