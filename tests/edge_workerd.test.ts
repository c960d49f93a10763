/**
 * The library in Cloudflare's workerd (the open-source Workers runtime, from
 * npm): `tools/bundle.ts` bundles it for the browser platform, workerd loads
 * the relaxed-SIMD kernels as a precompiled `wasm` module (workers cannot
 * compile Wasm from bytes) and serves a deterministic F16 safetensors file
 * from a read-only disk service; `workerd serve` listens on 127.0.0.1, the
 * test posts a JPEG, and the top-5 and logits must be this Deno's (logits
 * within 1e-5). Prints the bundle size, the cold start (process spawn to
 * first logits), the CPU time and memory of the workerd process, and the Wasm
 * memory inside it. Skips, saying why, when workerd is not installed
 * (`.ci/run` installs it; see `tools/edge/npm.ts`).
 */

import assert from "node:assert/strict";
import { bundleEdge } from "../tools/bundle.ts";
import { findWorkerd } from "../tools/edge/npm.ts";
import { denoAnswer, edgeImage, edgeWeights, maxAbsDiff } from "../tools/edge/parity.ts";
import {
  fetchWithin,
  freePort,
  processUsage,
  spawnServer,
  waitForPort,
} from "../tools/edge/server_process.ts";
import { type EdgeAnswer, MAX_IMAGE_BYTES } from "../tools/edge/worker.ts";
import { workerdConfig } from "../tools/edge/workerd_config.ts";

const MiB = 1024 * 1024;
const WEIGHTS_FILE = "googlenet-f16.safetensors";

Deno.test("workerd: the bundled worker classifies a posted JPEG with Deno's top-5 and logits", async (t) => {
  const workerd = await findWorkerd();
  if (workerd.path === null) {
    console.log(`  SKIP: ${workerd.reason}`);
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "edge-workerd-" });
  try {
    const bundle = await bundleEdge({ outDir: dir, isa: "relaxed" });
    const kernels = await Deno.readFile(bundle.kernels);
    if (!WebAssembly.validate(kernels)) {
      console.log("  SKIP: this Deno does not validate the relaxed-SIMD kernels to compare with");
      return;
    }
    const weights = await edgeWeights();
    await Deno.mkdir(`${dir}/weights`);
    await Deno.writeFile(`${dir}/weights/${WEIGHTS_FILE}`, weights);
    await Deno.writeTextFile(
      `${dir}/config.capnp`,
      workerdConfig({ weightsDir: `${dir}/weights`, weightsFile: WEIGHTS_FILE }),
    );
    const image = await edgeImage();
    const expected = await denoAnswer(kernels, weights, image);

    const { sizes } = bundle;
    console.log(
      `  ${workerd.version}; bundle ${(sizes.library / 1000).toFixed(1)} KB minified, ` +
        `${(sizes.libraryGzip / 1000).toFixed(1)} KB gzip; kernels ${
          (sizes.kernels / 1000).toFixed(1)
        } KB (${(sizes.kernelsGzip / 1000).toFixed(1)} KB gzip); weights ${
          (weights.length / MiB).toFixed(2)
        } MiB (F16)`,
    );

    const port = freePort();
    const server = spawnServer(
      workerd.path,
      ["serve", "config.capnp", "--socket-addr", `http=127.0.0.1:${port}`],
      { cwd: dir, deadlineMs: 120_000 },
    );
    try {
      await waitForPort(server, port, 20_000);
      const listening = performance.now() - server.spawnedAt;
      const idle = processUsage(server.pid);
      const url = `http://127.0.0.1:${port}/classify`;
      const post = async (body: Uint8Array<ArrayBuffer>) => {
        const response = await fetchWithin(url, { method: "POST", body }, 60_000);
        return { status: response.status, text: await response.text() };
      };

      const sent = performance.now();
      const first = await post(new Uint8Array(image));
      const firstLogits = performance.now() - server.spawnedAt;
      const request = performance.now() - sent;
      const afterFirst = processUsage(server.pid);
      assert.equal(first.status, 200, `workerd answered ${first.status}: ${first.text}`);
      const answer = JSON.parse(first.text) as EdgeAnswer;

      const warmStart = performance.now();
      const second = await post(new Uint8Array(image));
      const warm = performance.now() - warmStart;
      const afterSecond = processUsage(server.pid);
      assert.equal(second.status, 200, second.text);

      await t.step("the top-5 and logits are Deno's", () => {
        assert.equal(answer.created, true);
        assert.equal(answer.threads, 1);
        assert.deepEqual(answer.top.map((p) => p.index), expected.top.map((p) => p.index));
        assert.deepEqual(answer.top.map((p) => p.label), expected.top.map((p) => p.label));
        const diff = maxAbsDiff(answer.logits, expected.logits);
        console.log(
          `  top-5 ${answer.top.map((p) => `${p.label} ${p.probability.toFixed(4)}`).join(", ")}`,
        );
        console.log(`  max |workerd - Deno| logit: ${diff}`);
        assert.ok(diff <= 1e-5, `logits differ by ${diff}, expected at most 1e-5`);
        const again = JSON.parse(second.text) as EdgeAnswer;
        assert.equal(again.created, false, "the second request created another model");
        assert.equal(maxAbsDiff(again.logits, answer.logits), 0);
      });

      await t.step("a body that is no image is a 400 with the library's message", async () => {
        const bad = await post(new TextEncoder().encode("not an image"));
        assert.equal(bad.status, 400, bad.text);
        assert.match(bad.text, /^[A-Z]/);
      });

      await t.step(
        "a body over 16 MiB is a 413; other paths and methods are refused",
        async () => {
          const big = await post(new Uint8Array(MAX_IMAGE_BYTES + 1));
          assert.equal(big.status, 413, big.text);
          const get = await fetchWithin(url, {}, 10_000);
          assert.equal(get.status, 405, await get.text());
          const other = await fetchWithin(`http://127.0.0.1:${port}/`, { method: "POST" }, 10_000);
          assert.equal(other.status, 404, await other.text());
        },
      );

      const mib = (bytes: number | undefined) =>
        bytes === undefined ? "?" : `${(bytes / MiB).toFixed(1)} MiB`;
      console.log(
        `  cold start: listening ${listening.toFixed(0)} ms after spawn, first logits ${
          firstLogits.toFixed(0)
        } ms after spawn (that request ${
          request.toFixed(0)
        } ms: weights, create, decode, forward); ` +
          `warm request ${warm.toFixed(0)} ms`,
      );
      console.log(
        `  memory: Wasm ${mib(answer.memoryBytes)} inside workerd; workerd RSS ${
          mib(idle?.rss)
        } idle, ${mib(afterFirst?.rss)} after the first request, peak ${mib(afterSecond?.peakRss)}`,
      );
      if (idle && afterFirst && afterSecond) {
        console.log(
          `  workerd CPU time: ${idle.cpuMs} ms to listen, ${
            afterFirst.cpuMs - idle.cpuMs
          } ms for the first request, ${afterSecond.cpuMs - afterFirst.cpuMs} ms for the second`,
        );
      }
      assert.ok(answer.memoryBytes < 64 * MiB, `Wasm memory ${mib(answer.memoryBytes)} >= 64 MiB`);
    } finally {
      await server.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
