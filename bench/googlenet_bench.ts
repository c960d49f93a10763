/**
 * `deno task bench`: GoogLeNet batch 1 and 8 at 224x224 on this library and
 * its peers (onnxruntime-web wasm, TensorFlow.js wasm, onnxruntime-node), one
 * thread and all cores, all with the same weights and input, after checking
 * that every runtime gives the same logits; plus the kernel peak probe. Prints
 * a summary table (see bench/_report.ts) when the run ends. Peers that cannot
 * run here are listed with the reason.
 *
 * @module
 */

import {
  describeAdapter,
  GoogLeNet,
  isSoftwareAdapter,
  type Preference,
  type Tensor,
} from "../mod.ts";
import { probeAdapter } from "../src/backend/webgpu/device.ts";
import {
  createOrtNodeRunner,
  createOrtWebGpuRunner,
  createOrtWebRunner,
  createTfjsWasmRunner,
  isRunner,
  type PeerRunner,
  type PeerUnavailable,
} from "./peers/mod.ts";
import type { WasmBackend } from "../src/backend/wasm/backend.ts";
import { compileKernels } from "../src/backend/wasm/kernels.ts";
import { countMacs } from "../src/graph/cost.ts";
import { deterministicInput, deterministicStateDict } from "../tools/deterministic.ts";
import { note, printReport, record, recordedNotes, recordedRows } from "./_report.ts";
import { hostLine, npmVersions, startRun, writeSection } from "./_record.ts";
import { GEMM_KERNELS } from "../src/backend/wasm/calibrate.ts";
import { TFJS_THREADS_UNAVAILABLE } from "./peers/tfjs_wasm.ts";

const CORES = navigator.hardwareConcurrency;
// Host, commit and load average for the record (bench/results/latest.json).
const run = await startRun();
const SHAPES = { "batch 1": [1, 3, 224, 224], "batch 8": [8, 3, 224, 224] } as const;

async function model(threads: number, prefer: Preference = "memory"): Promise<GoogLeNet> {
  const m = await GoogLeNet.create({ backend: "wasm", auxLogits: false, threads, prefer });
  m.loadStateDict(
    deterministicStateDict([...m.stateDict()].map(([k, t]) => [k, t.shape] as const)),
  );
  return m;
}

const single = await model(1);
const multi = CORES > 1 ? await model(CORES) : null;
// The same weights laid out for speed (F(4x4, 3x3) on every 3x3 convolution, 23 MB more).
const singleFast = await model(1, "speed");
const multiFast = CORES > 1 ? await model(CORES, "speed") : null;
// The peak probe on every core at once (benched with the one-thread probe, at
// the end): one worker per core, started before the peers start theirs.
const probes = await Promise.all(
  Array.from({ length: CORES }, async () => {
    const worker = new Worker(new URL("./peak_worker.ts", import.meta.url), { type: "module" });
    await ask(worker, { module: (await compileKernels(false)).module });
    return worker;
  }),
);
const plan = single.plan([1, 3, 224, 224]);
const macs = countMacs(plan);
const gflop = (2 * macs.total) / 1e9;
const inputs = Object.fromEntries(
  Object.entries(SHAPES).map(([g, shape]) => [g, deterministicInput(`bench ${g}`, shape)]),
) as Record<keyof typeof SHAPES, Tensor>;

/** Our configurations: default (prefer memory) then prefer speed, 1 thread then all cores. */
function ours(): [string, GoogLeNet][] {
  const configs: [string, GoogLeNet][] = [["googlenet-wasm, 1 thread", single]];
  if (multi) configs.push([`googlenet-wasm, ${CORES} threads`, multi]);
  configs.push(["googlenet-wasm, 1 thread, prefer speed", singleFast]);
  if (multiFast) configs.push([`googlenet-wasm, ${CORES} threads, prefer speed`, multiFast]);
  return configs;
}

const stateDict = single.stateDict();
const peers: (PeerRunner | PeerUnavailable)[] = [];
for (const threads of CORES > 1 ? [1, CORES] : [1]) {
  peers.push(await createOrtWebRunner(stateDict, { threads }));
  peers.push(await createTfjsWasmRunner(stateDict, { threads }));
  peers.push(await createOrtNodeRunner(stateDict, { threads }));
}
const webgpuPeer = await createOrtWebGpuRunner(stateDict);
const skipped: { name: string; reason: string; short: string }[] = [];
for (const peer of [...peers, webgpuPeer]) {
  if (!isRunner(peer)) {
    note(`Skipped ${peer.name}: ${peer.reason}`);
    skipped.push({
      name: peer.name,
      reason: peer.reason,
      short: peer.reason === TFJS_THREADS_UNAVAILABLE ? "cannot run threads under Deno" : "not run",
    });
  }
}
const runners = peers.filter(isRunner);

// Same logits on every runtime before anything is timed.
const reference = (await single.forward(inputs["batch 1"])) as Tensor;
const scale = Math.max(...reference.data.map(Math.abs));
const others: [string, Float32Array][] = [];
for (const [name, m] of ours().slice(1)) {
  others.push([name, ((await m.forward(inputs["batch 1"])) as Tensor).data]);
}
for (const peer of runners) others.push([peer.name, await peer.run(inputs["batch 1"])]);
for (const [name, logits] of others) {
  const diff = Math.max(...logits.map((v, i) => Math.abs(v - reference.data[i])));
  if (!(diff <= 1e-4 * scale)) {
    throw new Error(`${name} disagrees with googlenet-wasm: max |diff| ${diff}`);
  }
  note(`Agreement with googlenet-wasm (1 thread): ${name}, max |diff| = ${diff.toExponential(1)}`);
}

for (const [group, input] of Object.entries(inputs)) {
  const images = input.shape[0];
  for (const [name, m] of ours()) {
    Deno.bench({
      name,
      group,
      baseline: m === single,
      n: group === "batch 1" ? 30 : 6,
      warmup: 2,
      async fn(b) {
        b.start();
        const start = performance.now();
        await m.forward(input);
        record(group, name, images, performance.now() - start, {
          ours: m.prefer === "speed" ? "ours, prefer speed" : "ours",
          threads: m.backend.threads,
        });
        b.end();
      },
    });
  }
  for (const peer of runners) {
    Deno.bench({
      name: peer.name,
      group,
      n: group === "batch 1" ? 20 : 4,
      warmup: 2,
      async fn(b) {
        b.start();
        const start = performance.now();
        await peer.run(input);
        record(group, peer.name, images, performance.now() - start, { threads: peer.threads });
        b.end();
      },
    });
  }
}

// Batch 8 against batch 1 on one model, in alternating rounds of 8 images each
// (8 batch-1 forwards and one batch-8 forward, in turn first), so that the
// VM's drift between the table's batch-1 and batch-8 groups does not decide
// the ratio: each round's ratio compares runs a fraction of a second apart.
const batchRounds = new Map<string, { one: number[]; eight: number[] }>();
for (const [name, m] of ours()) {
  const rounds = { one: [] as number[], eight: [] as number[] };
  batchRounds.set(name, rounds);
  const perImage = async (input: Tensor, times: number) => {
    const start = performance.now();
    for (let i = 0; i < times; i++) await m.forward(input);
    return (performance.now() - start) / 8;
  };
  Deno.bench({
    name,
    group: "batch 8 vs batch 1, alternating rounds",
    n: 8,
    warmup: 1,
    async fn(b) {
      b.start();
      const eightFirst = rounds.one.length % 2 === 1;
      const eight = eightFirst ? await perImage(inputs["batch 8"], 1) : 0;
      const one = await perImage(inputs["batch 1"], 8);
      rounds.eight.push(eightFirst ? eight : await perImage(inputs["batch 8"], 1));
      rounds.one.push(one);
      b.end();
    },
  });
}

// WebGPU last, so that a software adapter's threads (llvmpipe) are idle while the others run.
const { adapter, reason } = await probeAdapter();
if (!adapter) {
  note(`WebGPU: skipped, ${reason}`);
} else {
  const info = describeAdapter(adapter);
  note(
    `WebGPU adapter: ${info.description || info.vendor}` +
      (isSoftwareAdapter(info)
        ? " (software: the WebGPU rows are a smoke test, not a GPU measurement)"
        : ""),
  );
  const gpu = await GoogLeNet.create({ backend: "webgpu", auxLogits: false, stateDict });
  const logits = (await gpu.forward(inputs["batch 1"])) as Tensor;
  const diff = Math.max(...logits.data.map((v, i) => Math.abs(v - reference.data[i])));
  if (!(diff <= 1e-3 * scale)) throw new Error(`WebGPU disagrees with Wasm: max |diff| ${diff}`);
  note(
    `Agreement with googlenet-wasm (1 thread): googlenet-wasm WebGPU, max |diff| = ${
      diff.toExponential(1)
    }`,
  );
  if (isRunner(webgpuPeer)) {
    const theirs = await webgpuPeer.run(inputs["batch 1"]);
    const peerDiff = Math.max(...theirs.map((v, i) => Math.abs(v - reference.data[i])));
    if (!(peerDiff <= 1e-3 * scale)) {
      throw new Error(`${webgpuPeer.name} disagrees: max |diff| ${peerDiff}`);
    }
    note(
      `Agreement with googlenet-wasm (1 thread): ${webgpuPeer.name}, max |diff| = ${
        peerDiff.toExponential(1)
      }`,
    );
  }
  for (const [group, input] of Object.entries(inputs)) {
    const webgpuGroup = `webgpu, ${group}`;
    const candidates: [string, (x: Tensor) => Promise<unknown>][] = [[
      "googlenet-wasm WebGPU",
      (x) => gpu.forward(x),
    ]];
    if (isRunner(webgpuPeer) && group === "batch 1") {
      candidates.push([webgpuPeer.name, (x) => webgpuPeer.run(x)]);
    }
    for (const [name, run] of candidates) {
      Deno.bench({
        name,
        group: webgpuGroup,
        baseline: name === "googlenet-wasm WebGPU",
        n: input.shape[0] === 1 ? 3 : 1,
        warmup: 1,
        async fn(b) {
          b.start();
          const start = performance.now();
          await run(input);
          record(
            webgpuGroup,
            name,
            input.shape[0],
            performance.now() - start,
            { ours: name === "googlenet-wasm WebGPU" },
          );
          b.end();
        },
      });
    }
  }
}

// Size and cold start: the kernel binaries raw and gzipped, and a fresh process
// going from import to first logits with the weights already in memory.
for (
  const target of ["kernels-relaxed.wasm", "kernels-simd.wasm", "kernels-relaxed-threads.wasm"]
) {
  const bytes = await Deno.readFile(
    new URL(`../src/backend/wasm/kernels/${target}`, import.meta.url),
  );
  const gz = await new Response(
    new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip")),
  ).arrayBuffer();
  note(
    `Binary ${target}: ${(bytes.length / 1024).toFixed(1)} KB raw, ${
      (gz.byteLength / 1024).toFixed(1)
    } KB gzip`,
  );
}
for (const backend of ["auto", "wasm"]) {
  const script = new URL("../tools/edge/cold_start.ts", import.meta.url).pathname;
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", script, backend],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const report = JSON.parse(new TextDecoder().decode(stdout));
  const ms = Object.entries(report.ms as Record<string, number>).map(([k, v]) =>
    `${k} ${v.toFixed(0)} ms`
  );
  note(
    `Cold start (fresh process, weights in memory, backend "${backend}" -> ${report.backend}, ` +
      `${report.threads} threads, ${report.memoryMB.toFixed(1)} MB of Wasm memory): ${
        ms.join(", ")
      } (touchFreshMemory: the page faults of that much fresh memory, for scale)`,
  );
}
// Cold start as a ratio that holds across machines: ours and onnxruntime-web's
// Wasm EP, one thread each (as on the edge), a fresh process each, import ->
// first logits, in alternating rounds (which runs first alternates too).
{
  const DEV_CONFIG = new URL("../deno.dev.jsonc", import.meta.url).pathname;
  const coldStart = async (script: string, args: string[]): Promise<number> => {
    const { stdout, success } = await new Deno.Command(Deno.execPath(), {
      // The bench's config: onnxruntime-web is not in the library's (deno.json).
      args: ["run", "--config", DEV_CONFIG, "--allow-read", "--allow-env", script, ...args],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!success) throw new Error(`${script} ${args.join(" ")} failed`);
    const lines = new TextDecoder().decode(stdout).trim().split("\n");
    return JSON.parse(lines[lines.length - 1]).ms.importToFirstLogits;
  };
  const ours = new URL("../tools/edge/cold_start.ts", import.meta.url).pathname;
  const theirs = new URL("../tools/edge/cold_start_ort.ts", import.meta.url).pathname;
  const times: { ours: number; theirs: number }[] = [];
  for (let round = 0; round < 5; round++) {
    const runOurs = () => coldStart(ours, ["wasm", "1"]);
    const runTheirs = () => coldStart(theirs, ["1"]);
    if (round % 2 === 0) times.push({ ours: await runOurs(), theirs: await runTheirs() });
    else {
      const t = await runTheirs();
      times.push({ ours: await runOurs(), theirs: t });
    }
  }
  const med = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];
  const ratios = times.map((t) => t.ours / t.theirs);
  note(
    `Cold start ratio (fresh process, weights in memory, 1 thread, import -> first logits, ` +
      `median of ${times.length} alternating rounds): googlenet-wasm ${
        med(times.map((t) => t.ours)).toFixed(0)
      } ms, onnxruntime-web wasm ${med(times.map((t) => t.theirs)).toFixed(0)} ms, ours / theirs ${
        med(ratios).toFixed(2)
      } (per-round ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`,
  );
}
for (const m of [single, singleFast]) {
  note(
    `Wasm memory after batch 1 (1 thread, seed, no aux, prefer ${m.prefer}): ${
      (m.backend.memoryBytes() / 1e6).toFixed(1)
    } MB ` +
      `(decimal; weights ${(m.backend.weights().length * 4 / 1e6).toFixed(1)} MB, arena ${
        (plan.arenaSize * 4 / 1e6).toFixed(1)
      } MB)`,
  );
}

// Peak: the micro-kernel's instruction mix on L1-resident data, one thread.
const backend = single.backend as WasmBackend;
const PEAK_ITERS = 2_000_000;
let peakGflops = 0;
let pureGflops = 0;

/** A one-thread probe of PEAK_ITERS steps of 96 flops; `record` gets each call's GFLOP/s. */
function probeBench(name: string, probe: () => void, record: (gflops: number) => void): void {
  Deno.bench({
    name,
    group: "peak",
    n: 20,
    warmup: 3,
    fn(b) {
      b.start();
      const start = performance.now();
      probe();
      const ms = performance.now() - start;
      b.end();
      record((PEAK_ITERS * 96) / ms / 1e6);
    },
  });
}

probeBench(
  "pure FMA (12 x f32x4 multiply-add chains on registers, no loads)",
  () => backend.kernels.fma_pure(PEAK_ITERS, 64),
  (g) => pureGflops = Math.max(pureGflops, g),
);

// Where the time of one forward goes, by layer class, against the pure FMA
// rate (the GEMM layers' goal: 90 %): one thread, batch 1, the best of 5
// profiled runs per operation (a bench of its own, so it runs in order).
const layerClasses = new Map<string, { flops: number; ms: number }>();
Deno.bench({
  name: "forward profile by layer class (1 thread, batch 1)",
  group: "profile",
  n: 1,
  warmup: 0,
  async fn() {
    layerClasses.clear(); // the harness may call this more than once: keep the last call's
    const input = inputs["batch 1"];
    const ops = new Map(plan.ops.map((op) => [op.name, op]));
    const best = new Map<string, number>();
    for (let r = 0; r < 6; r++) {
      for (const { name, ms } of await backend.profile(plan, input)) {
        if (r > 0) best.set(name, Math.min(best.get(name) ?? Infinity, ms));
      }
    }
    for (const [name, ms] of best) {
      const op = ops.get(name)!;
      let label: string = op.kind, flops = 0;
      if (op.kind === "conv2d") {
        flops = 2 * op.n * op.oh * op.ow * op.weights.n * op.weights.k;
        label = op.winograd
          ? `${op.kh}x${op.kw} Winograd`
          : op.kh === 1 && op.sh === 1
          ? "1x1 GEMM"
          : `${op.kh}x${op.kw}/${op.sh} im2col GEMM`;
      }
      const entry = layerClasses.get(label) ?? { flops: 0, ms: 0 };
      entry.flops += flops;
      entry.ms += ms;
      layerClasses.set(label, entry);
    }
  },
});

function layerClassesLine(): string {
  const total = [...layerClasses.values()].reduce((s, e) => s + e.ms, 0);
  return `Forward by layer class (1 thread, batch 1, best of 5 profiled runs; ${
    total.toFixed(1)
  } ms): ` + [...layerClasses].sort((a, b) =>
    b[1].ms - a[1].ms
  ).map(([label, e]) =>
    `${label} ${e.ms.toFixed(1)} ms` +
    (e.flops
      ? ` (${(e.flops / e.ms / 1e6).toFixed(1)} GFLOP/s direct-equivalent${
        pureGflops > 0
          ? `, ${(100 * e.flops / e.ms / 1e6 / pureGflops).toFixed(0)} % of pure FMA`
          : ""
      })`
      : "")
  ).join(", ");
}
probeBench(
  "peak probe (12 x f32x4 multiply-add per step)",
  () => backend.kernels.fma_peak(PEAK_ITERS, 64),
  (g) => peakGflops = Math.max(peakGflops, g),
);

const allCores: number[][] = [];
const PROBE_WARMUP = 2;
let probeCalls = 0;
Deno.bench({
  name: `peak probe, ${CORES} cores at once (one worker each)`,
  group: "peak",
  n: 10,
  warmup: PROBE_WARMUP,
  async fn() {
    const rates = await Promise.all(probes.map((w) => ask(w, { iters: PEAK_ITERS })));
    if (++probeCalls > PROBE_WARMUP) allCores.push(rates);
  },
});

function ask(worker: Worker, message: unknown): Promise<number> {
  return new Promise((resolve) => {
    worker.onmessage = (event: MessageEvent<number>) => resolve(event.data);
    worker.postMessage(message);
  });
}

globalThis.addEventListener("unload", () => {
  for (const w of probes) w.terminate();
  note(hostLine(run));
  const g = backend.gemm;
  note(
    `Kernel ISA: ${backend.isa}; cores: ${CORES}; pure FMA: ${pureGflops.toFixed(1)} GFLOP/s, ` +
      `6x8 mix probe: ${peakGflops.toFixed(1)} GFLOP/s (${
        (100 * peakGflops / pureGflops).toFixed(0)
      } % of pure; one thread); GEMM micro-kernel ${g.kernel} (${g.source}${
        g.source === "measured" ? ` in ${g.ms.toFixed(0)} ms` : ""
      }; L1 probe: ${
        GEMM_KERNELS.map((k) =>
          `${k} ${g.rates[k].toFixed(1)} GFLOP/s = ${(100 * g.rates[k] / pureGflops).toFixed(0)} %`
        ).join(", ")
      } of pure FMA)`,
  );
  if (layerClasses.size) note(layerClassesLine());
  if (allCores.length) {
    // The run whose total is the median: each core's rate, and the most that
    // CORES threads could gain over the fastest core.
    const sum = (r: number[]) => r.reduce((a, b) => a + b, 0);
    const mid = [...allCores].sort((a, b) => sum(a) - sum(b))[allCores.length >> 1];
    note(
      `Peak probe on ${CORES} cores at once (median run): ${
        mid.map((g) => g.toFixed(1)).join(" + ")
      } GFLOP/s, a scaling ceiling of ${(sum(mid) / Math.max(...mid)).toFixed(2)}x; ` +
        `per worker over the ${allCores.length} runs: ${
          mid.map((_, i) => {
            const rates = allCores.map((r) => r[i]);
            return `${Math.min(...rates).toFixed(1)}-${Math.max(...rates).toFixed(1)}`;
          }).join(", ")
        } GFLOP/s`,
    );
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];
  for (const [name, { one, eight }] of batchRounds) {
    // The warm-up round is recorded too: leave it out.
    const [ones, eights] = [one.slice(1), eight.slice(1)];
    if (ones.length === 0) continue;
    const ratio = median(eights.map((t, i) => t / ones[i]));
    note(
      `Batch 8 vs batch 1, ${name}, ${ones.length} alternating rounds of 8 images: ${
        median(eights).toFixed(1)
      } vs ${median(ones).toFixed(1)} ms per image (medians); batch 8 / batch 1 per round, ` +
        `median ${ratio.toFixed(3)}, range ${
          Math.min(...eights.map((t, i) => t / ones[i])).toFixed(3)
        }-${Math.max(...eights.map((t, i) => t / ones[i])).toFixed(3)}`,
    );
  }
  note(
    `Multiply-adds per image: ${macs.total} (` +
      Object.entries(macs.byKind).map(([k, v]) => `${k} ${(100 * v / macs.total).toFixed(1)} %`)
        .join(", ") +
      ")",
  );
  printReport(gflop);
  const peerVersions = npmVersions([
    "onnxruntime-web",
    "onnxruntime-node",
    "@tensorflow/tfjs-core",
    "@tensorflow/tfjs-backend-wasm",
  ]);
  const path = writeSection("inference", run, {
    gflopPerImage: gflop,
    peers: peerVersions,
    rows: recordedRows(),
    skipped,
    notes: recordedNotes(),
  });
  if (path) {
    console.log(`Record: ${path} (deno task readme-tables renders README's tables from it)`);
  }
});
