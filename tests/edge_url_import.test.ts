/**
 * googlenet-wasm runs when imported by URL, with no permission to read,
 * write or see the environment: a child Deno imports `mod.ts` from a
 * loopback server of this repository, fetches the kernel binary (and a weight
 * file) from it, and prints logits that must equal an in-process run bit for
 * bit, single-threaded and with the default thread count (workers loaded
 * from the same server).
 *
 * What Deno 2.9 needs, measured here: `--allow-import=HOST` for the http
 * imports (only deno.land, jsr.io, esm.sh, cdn.jsdelivr.net and the GitHub
 * raw hosts are allowed by default; `--allow-net` does not imply it) and
 * `--allow-net=HOST` for the library's `fetch` of `kernels-*.wasm` (and of the
 * weights). The kernel workers, loaded from the same host, need nothing more:
 * a worker inherits the parent's permissions.
 */

import assert from "node:assert/strict";
import { classify, GoogLeNet, type Prediction, type Tensor } from "../mod.ts";
import { deterministicInput, deterministicStateDict } from "../tools/deterministic.ts";
import {
  assertSameBits,
  childJson,
  edgeScript,
  runDeno,
  serveRepo,
} from "./_support/edge_child.ts";
import { writeSafetensors } from "../src/weights/mod.ts";

interface UrlImportReport {
  top: Prediction[];
  threads: number;
  kind: string;
  isa: string | null;
  ms: Record<string, number>;
  logits: number[];
}

const reference: Record<"aux" | "no_aux", [string, number[]][]> = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/state_dict.json", import.meta.url)),
);
const stateDict = deterministicStateDict(reference.no_aux);
const WEIGHTS_PATH = "/edge/deterministic.safetensors";

/** Logits of the same run in this process. */
async function inProcess(threads: number | undefined, weights: boolean): Promise<Float32Array> {
  const model = await GoogLeNet.create({ auxLogits: false, ...(threads ? { threads } : {}) });
  if (weights) model.loadStateDict(stateDict);
  const logits = (await model.forward(deterministicInput("edge", [1, 3, 224, 224]))) as Tensor;
  await model.dispose();
  return logits.data;
}

/** Runs `tools/edge/url_import.ts` against a fresh server and module cache. */
async function urlImport(threads: "1" | "default", weights: "seed" | string) {
  const server = serveRepo(
    new Map([[WEIGHTS_PATH, writeSafetensors(stateDict)]]),
  );
  // A private module cache: nothing is cached from an earlier run, nothing is left behind.
  const denoDir = await Deno.makeTempDir({ prefix: "edge-deno-dir-" });
  try {
    const result = await runDeno([
      "run",
      "--no-prompt",
      "--no-config",
      "--no-lock",
      `--allow-import=${server.host}`,
      `--allow-net=${server.host}`,
      edgeScript("url_import.ts"),
      server.base,
      threads,
      weights,
    ], { env: { DENO_DIR: denoDir }, timeoutMs: 60_000 });
    const report = childJson<UrlImportReport>(result, `url_import.ts (threads ${threads})`);
    return { report, requests: [...server.requests] };
  } finally {
    await server.close();
    await Deno.remove(denoDir, { recursive: true }).catch(() => {});
  }
}

function describe(report: UrlImportReport): string {
  const ms = Object.entries(report.ms).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(", ");
  return `threads ${report.threads}, ${report.kind}/${report.isa}: ${ms}`;
}

for (const threads of ["1", "default"] as const) {
  Deno.test(`URL import with only --allow-import/--allow-net for the host (threads: ${threads}) gives the in-process logits bit for bit`, async () => {
    const { report, requests } = await urlImport(threads, "seed");
    console.log(`  cold start over HTTP (import -> first 224x224 logits): ${describe(report)}`);
    assert.equal(report.kind, "wasm");
    if (threads === "1") assert.equal(report.threads, 1);
    const expected = await inProcess(threads === "1" ? 1 : undefined, false);
    assertSameBits(report.logits, expected, "URL-imported logits");

    // The kernel binary came from the server, typed application/wasm.
    const wasm = requests.filter((r) => r.path.endsWith(".wasm"));
    assert.ok(wasm.length >= 1, "no kernels-*.wasm was fetched");
    for (const r of wasm) assert.deepEqual([r.status, r.type], [200, "application/wasm"], r.path);
    if (report.threads > 1) {
      assert.ok(
        requests.some((r) => r.path === "/src/backend/wasm/worker.ts" && r.status === 200),
        "workers should load worker.ts from the server",
      );
    }
  });
}

Deno.test("URL import loads weights with loadWeights(url) and classifies a served image like the in-process run", async () => {
  const { report, requests } = await urlImport("1", WEIGHTS_PATH);
  console.log(`  with weights over HTTP: ${describe(report)}`);
  assert.ok(requests.some((r) => r.path === WEIGHTS_PATH && r.status === 200));
  assertSameBits(report.logits, await inProcess(1, true), "URL-imported logits with weights");
  const model = await GoogLeNet.create({ auxLogits: false, threads: 1, stateDict });
  const local = await classify(model, new URL("../assets/chelsea.jpg", import.meta.url), {
    top: 3,
  });
  await model.dispose();
  assert.deepEqual(report.top, local);
});

Deno.test("without --allow-import the URL import is refused up front (Deno 2.9 asks for it, not for --allow-net)", async () => {
  const server = serveRepo();
  const denoDir = await Deno.makeTempDir({ prefix: "edge-deno-dir-" });
  try {
    const result = await runDeno([
      "run",
      "--no-prompt",
      "--no-config",
      "--no-lock",
      `--allow-net=${server.host}`,
      edgeScript("url_import.ts"),
      server.base,
    ], { env: { DENO_DIR: denoDir } });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /--allow-import/);
  } finally {
    await server.close();
    await Deno.remove(denoDir, { recursive: true }).catch(() => {});
  }
});
