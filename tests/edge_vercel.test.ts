/**
 * The library in Vercel's `edge-runtime` (the Edge Functions runtime, from
 * npm, hosted by Node): `tools/bundle.ts` bundles it as a classic script,
 * `tools/edge/vercel_host.mjs` evaluates it in an `EdgeRuntime` whose context
 * may not compile Wasm, hands it the kernels as a module compiled by the host
 * (as Vercel and Next.js do for `?module` imports) and the weights as an
 * F16 safetensors file over loopback HTTP; the test posts a JPEG, and the
 * top-5 and logits must be this Deno's with the same kernel binary (logits
 * within 1e-5). Prints the cold start (Node spawn to first logits) and the
 * host's memory. Skips, saying why, when Node or edge-runtime is missing
 * (`.ci/run` installs it; see `tools/edge/npm.ts`).
 */

import assert from "node:assert/strict";
import { bundleEdge } from "../tools/bundle.ts";
import { findEdgeRuntime } from "../tools/edge/npm.ts";
import { denoAnswer, edgeImage, edgeWeights, maxAbsDiff } from "../tools/edge/parity.ts";
import {
  fetchWithin,
  processUsage,
  type ServerProcess,
  spawnServer,
  waitForOutput,
} from "../tools/edge/server_process.ts";
import type { EdgeAnswer } from "../tools/edge/worker.ts";

const MiB = 1024 * 1024;
const ROOT = new URL("../", import.meta.url);
const KERNELS = ["kernels-relaxed.wasm", "kernels-simd.wasm"].map((name) =>
  new URL(`src/backend/wasm/kernels/${name}`, ROOT).pathname
);
const HOST = new URL("tools/edge/vercel_host.mjs", ROOT).pathname;

interface HostLine {
  url: string;
  kernels: string;
  node: string;
  bridge: boolean;
  compileFromBytes: string;
}

Deno.test("edge-runtime: the bundled script classifies a posted JPEG with Deno's top-5 and logits", async () => {
  const edgeRuntime = await findEdgeRuntime();
  if (edgeRuntime.path === null) {
    console.log(`  SKIP: ${edgeRuntime.reason}`);
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "edge-vercel-" });
  const servers: ServerProcess[] = [];
  try {
    const bundle = await bundleEdge({ outDir: dir });
    const weights = await edgeWeights();
    const weightsPath = `${dir}/googlenet-f16.safetensors`;
    await Deno.writeFile(weightsPath, weights);
    const image = await edgeImage();

    /** Starts the host, posts the image, returns its answer and timings. */
    const run = async (bridge: boolean) => {
      const server = spawnServer(
        "node",
        [
          HOST,
          ...(bridge ? ["--bridge-instanceof"] : []),
          edgeRuntime.path,
          bundle.vercelScript,
          weightsPath,
          ...KERNELS,
        ],
        { cwd: dir, deadlineMs: 120_000 },
      );
      servers.push(server);
      const line = JSON.parse(
        (await waitForOutput(server, /^\{"url".*\}$/m, 30_000))[0],
      ) as HostLine;
      const listening = performance.now() - server.spawnedAt;
      const idle = processUsage(server.pid);
      const sent = performance.now();
      const response = await fetchWithin(
        new URL("classify", line.url).href,
        { method: "POST", body: new Uint8Array(image) },
        60_000,
      );
      const text = await response.text();
      const firstLogits = performance.now() - server.spawnedAt;
      const request = performance.now() - sent;
      const after = processUsage(server.pid);
      await server.close();
      return { line, status: response.status, text, listening, firstLogits, request, idle, after };
    };

    // The host compiles the kernels outside the context (as for ?module imports): the
    // library must accept a module from another realm as it is, no bridging.
    const result = await run(false);
    assert.equal(result.status, 200, `edge-runtime answered ${result.status}: ${result.text}`);
    const answer = JSON.parse(result.text) as EdgeAnswer;
    const kernels = await Deno.readFile(result.line.kernels);
    if (!WebAssembly.validate(kernels)) {
      console.log(`  SKIP: this Deno does not validate ${result.line.kernels} to compare with`);
      return;
    }
    const expected = await denoAnswer(kernels, weights, image);
    assert.match(result.line.compileFromBytes, /disallowed/, "the context may compile Wasm");
    assert.equal(answer.threads, 1);
    assert.deepEqual(answer.top.map((p) => p.index), expected.top.map((p) => p.index));
    const diff = maxAbsDiff(answer.logits, expected.logits);
    const file = result.line.kernels.slice(result.line.kernels.lastIndexOf("/") + 1);
    console.log(
      `  edge-runtime ${edgeRuntime.version} on Node ${result.line.node}, ${file}; ` +
        `top-5 ${
          answer.top.map((p) => p.label).join(", ")
        }; max |edge-runtime - Deno| logit: ${diff}`,
    );
    const mib = (bytes: number | undefined) =>
      bytes === undefined ? "?" : `${(bytes / MiB).toFixed(1)} MiB`;
    console.log(
      `  cold start: listening ${result.listening.toFixed(0)} ms after spawn, first logits ${
        result.firstLogits.toFixed(0)
      } ms after spawn (that request ${result.request.toFixed(0)} ms); Wasm ${
        mib(answer.memoryBytes)
      }; Node RSS ${mib(result.idle?.rss)} idle, peak ${mib(result.after?.peakRss)}` +
        (result.idle && result.after
          ? `; CPU ${result.after.cpuMs - result.idle.cpuMs} ms for the request`
          : ""),
    );
    assert.ok(diff <= 1e-5, `logits differ by ${diff}, expected at most 1e-5`);
  } finally {
    for (const server of servers) await server.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
