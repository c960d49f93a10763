/**
 * The training rows of `deno task bench` (alone: `deno task bench:train`; a
 * script, run after the `deno bench` files because `deno bench` decides the
 * number of iterations itself):
 * one training step per image (forward, backward, AdamW step with the
 * repack of the packed weights, zeroGrad) at batch 16, 224x224, seed
 * variant with aux heads and `initWeights: true`, on 1 and 2 threads,
 * against PyTorch 1.13 on CPU in a Python child process
 * (bench/peers/torch_train.py: the reference's GoogLeNet, same batch, same
 * loss, AdamW lr 1e-4, `torch.set_num_threads(T)`). Ours and theirs run in
 * alternating rounds (which goes first alternates too), because this VM's
 * speed drifts over seconds: the ratio is the median of the per-round
 * ratios, with their range. Also head-only fine-tuning (`trainable:
 * ["fc."]`; PyTorch with `requires_grad` on fc alone), a per-operation
 * profile of one step on one thread, and the Wasm memory at batch 16.
 * Prints its table at the end and writes the `"training"` section of
 * bench/results/latest.json (see bench/_record.ts).
 *
 * `BENCH_TRAIN_ROUNDS` (default 5) and `BENCH_TRAIN_BATCH` (default 16)
 * shrink a smoke run, `BENCH_TRAIN_ONLY=full|head|profile` runs one part;
 * `BENCH_RECORD=` (empty) keeps such a run out of the record.
 *
 * @module
 */

import { AdamW, GoogLeNet, Tensor } from "../mod.ts";
import type { WasmBackend } from "../src/backend/wasm/backend.ts";
import { deterministicInput } from "../tools/deterministic.ts";
import { hostLine, loadAverage, type RunInfo, startRun, writeSection } from "./_record.ts";

const BATCH = Number(Deno.env.get("BENCH_TRAIN_BATCH") ?? 16);
const ROUNDS = Number(Deno.env.get("BENCH_TRAIN_ROUNDS") ?? 5);
const SIZE = 224;
const INPUT_NAME = `training bench ${BATCH}`;
const CORES = navigator.hardwareConcurrency;
const THREADS = CORES > 1 ? [1, 2] : [1];
const PYTHON = "/usr/bin/python3";

type Mode = "full" | "head";

/** One configuration's rounds (the first, a warm-up, is left out of every figure). */
interface Rounds {
  mode: Mode;
  threads: number;
  /** Our step, ms: total and its parts. */
  ours: number[];
  backward: number[];
  optimizer: number[];
  zeroGrad: number[];
  theirs: number[];
  /** Wasm memory after the last step, bytes. */
  memoryBytes: number;
}

interface Profile {
  threads: number;
  forwardMs: number;
  backwardMs: number;
  backwardByKind: Record<string, number>;
  backwardTop: { name: string; kind: string; ms: number }[];
  optimizerMs: number;
  /** The optimizer kernels within the step (0 when the update ran in TypeScript). */
  updateKernelsMs: number;
  /** The repack's kernels within the step. */
  repackMs: number;
  zeroGradMs: number;
  peakWasmBytes: number;
  arenaBytes: number;
  activationsMBPerImage: number;
}

/** PyTorch in a child process, one JSON line each way (bench/peers/torch_train.py). */
class TorchPeer {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;
  constructor() {
    this.#child = new Deno.Command(PYTHON, {
      args: [new URL("./peers/torch_train.py", import.meta.url).pathname],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#lines = lines(this.#child.stdout)[Symbol.asyncIterator]();
  }

  async ask(message: Record<string, unknown>): Promise<Record<string, number | string>> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(message) + "\n"));
    const { value, done } = await this.#lines.next();
    if (done) throw new Error(`PyTorch child ended without answering ${JSON.stringify(message)}`);
    return JSON.parse(value);
  }

  async close(): Promise<void> {
    await this.#writer.close();
    await this.#child.status;
  }
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let at;
    while ((at = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
    }
  }
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const torchAvailable = await new Deno.Command(PYTHON, {
  args: ["-c", "import torch"],
  stdout: "null",
  stderr: "null",
}).output().then((r) => r.success, () => false);
const input = deterministicInput(INPUT_NAME, [BATCH, 3, SIZE, SIZE]);
const labels = Array.from({ length: BATCH }, (_, i) => (61 * i) % 1000);
let torchVersion = "";

async function ourModel(threads: number, mode: Mode): Promise<GoogLeNet> {
  const model = await GoogLeNet.create({
    backend: "wasm",
    variant: "seed",
    auxLogits: true,
    initWeights: true,
    threads,
    ...(mode === "head" ? { trainable: ["fc."] } : {}),
  });
  return model.train();
}

/** Times one of our steps: backward, then the optimizer (with the repack), then zeroGrad. */
async function ourStep(model: GoogLeNet, opt: AdamW): Promise<[number, number, number]> {
  const t0 = performance.now();
  await model.backward(input, labels);
  const t1 = performance.now();
  await opt.step();
  const t2 = performance.now();
  opt.zeroGrad();
  return [t1 - t0, t2 - t1, performance.now() - t2];
}

/** Alternating rounds of one configuration: a warm-up round, then `ROUNDS`. */
async function measure(mode: Mode, threads: number): Promise<Rounds> {
  const rounds: Rounds = {
    mode,
    threads,
    ours: [],
    backward: [],
    optimizer: [],
    zeroGrad: [],
    theirs: [],
    memoryBytes: 0,
  };
  const model = await ourModel(threads, mode);
  const opt = new AdamW(model, { lr: 1e-4 });
  // A fresh PyTorch process per configuration: nothing left of the previous model.
  const torch = torchAvailable ? new TorchPeer() : null;
  try {
    if (torch) {
      const setup = await torch.ask({
        cmd: "setup",
        threads,
        mode,
        batch: BATCH,
        size: SIZE,
        input: INPUT_NAME,
      });
      torchVersion = String(setup.torch);
    }
    for (let round = 0; round <= ROUNDS; round++) {
      const theirsFirst = round % 2 === 1;
      const theirs = async () => {
        if (torch) rounds.theirs.push(Number((await torch.ask({ cmd: "step" })).ms));
      };
      if (theirsFirst) await theirs();
      const [backward, optimizer, zeroGrad] = await ourStep(model, opt);
      if (!theirsFirst) await theirs();
      rounds.ours.push(backward + optimizer + zeroGrad);
      rounds.backward.push(backward);
      rounds.optimizer.push(optimizer);
      rounds.zeroGrad.push(zeroGrad);
    }
    rounds.memoryBytes = model.backend.memoryBytes();
  } finally {
    await model.dispose();
    await torch?.close();
  }
  return rounds;
}

/** One step on one thread, operation by operation, and the memory it takes. */
async function profileStep(): Promise<Profile> {
  const model = await ourModel(1, "full");
  try {
    const opt = new AdamW(model, { lr: 1e-4 });
    await ourStep(model, opt); // allocates training's regions, warms the code
    const backend = model.backend as WasmBackend;
    const plans = model.trainingPlan(input.shape);
    const grads = Tensor.zeros([BATCH, 3 * model.numClasses, 1, 1]);
    const forward = await backend.profile(plans.forward, input);
    const backward = await backend.profile(plans.backward, grads);
    // The step's weight plans timed by kind: the optimizer kernels (optim_step) and the repack.
    const kernels = { optim_step: 0, repack: 0 };
    const runWeights = backend.runWeights;
    backend.runWeights = async (plan) => {
      const start = performance.now();
      await runWeights.call(backend, plan);
      kernels[plan.ops[0]?.kind === "optim_step" ? "optim_step" : "repack"] += performance.now() -
        start;
    };
    const t0 = performance.now();
    await opt.step();
    const t1 = performance.now();
    backend.runWeights = runWeights;
    await opt.zeroGrad(); // the kernels zero the gradients on every thread
    const t3 = performance.now();
    const byKind: Record<string, number> = {};
    for (const op of backward) byKind[op.kind] = (byKind[op.kind] ?? 0) + op.ms;
    const sum = (ops: { ms: number }[]) => ops.reduce((a, op) => a + op.ms, 0);
    return {
      threads: 1,
      forwardMs: sum(forward),
      backwardMs: sum(backward),
      backwardByKind: Object.fromEntries(Object.entries(byKind).sort((a, b) => b[1] - a[1])),
      backwardTop: [...backward].sort((a, b) => b.ms - a.ms).slice(0, 10),
      optimizerMs: t1 - t0,
      updateKernelsMs: kernels.optim_step,
      repackMs: kernels.repack,
      zeroGradMs: t3 - t1,
      peakWasmBytes: backend.memoryBytes(),
      arenaBytes: plans.forward.arenaSize * 4,
      activationsMBPerImage: plans.forward.arenaSize * 4 / BATCH / 1e6,
    };
  } finally {
    await model.dispose();
  }
}

/** The section's rows: each configuration's medians and per-round ratios, warm-up left out. */
function rows(results: readonly Rounds[]) {
  return results.filter((r) => r.ours.length > 1).map((r) => {
    const ours = r.ours.slice(1), theirs = r.theirs.slice(1);
    const ratios = theirs.length === ours.length ? ours.map((t, i) => t / theirs[i]) : [];
    const perImage = (v: number[]) => v.length ? median(v) / BATCH : null;
    return {
      mode: r.mode,
      threads: r.threads,
      oursMsPerImage: perImage(ours),
      theirsMsPerImage: perImage(theirs),
      ratio: ratios.length
        ? { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) }
        : null,
      oursParts: {
        backwardMsPerImage: perImage(r.backward.slice(1)),
        optimizerMs: median(r.optimizer.slice(1)),
        zeroGradMs: median(r.zeroGrad.slice(1)),
      },
      samples: { ours, theirs, ratios },
      memoryBytes: r.memoryBytes,
    };
  });
}

/** Prints the rows and the profile, and writes the record's `"training"` section. */
function report(run: RunInfo, results: readonly Rounds[], profile: Profile | null): void {
  const table = rows(results);
  const f1 = (v: number | null) => v === null ? "-" : v.toFixed(1);
  const lines = [
    "",
    `Training, one step per image (forward, backward, AdamW + repack, zeroGrad), batch ${BATCH}, ` +
    `${SIZE}x${SIZE}, seed variant, aux heads, initWeights; PyTorch ${
      torchVersion || "not run"
    }; ${ROUNDS} alternating rounds after a warm-up`,
    hostLine({ ...run, loadAverage: { start: run.loadAverage.start, end: loadAverage() } }),
    "| step | threads | googlenet-wasm ms / image | PyTorch ms / image | ours / PyTorch, median of rounds (range; goal <= 1.0) |",
    "|---|---:|---:|---:|---:|",
    ...table.map((r) =>
      `| ${r.mode === "full" ? "all layers" : "head only (fc.)"} | ${r.threads} | ` +
      `${f1(r.oursMsPerImage)} | ${f1(r.theirsMsPerImage)} | ${
        r.ratio
          ? `${r.ratio.median.toFixed(2)} (${r.ratio.min.toFixed(2)}-${r.ratio.max.toFixed(2)})`
          : "-"
      } |`
    ),
    ...table.map((r) =>
      `Ours, ${r.mode}, ${r.threads}t: forward + backward ${
        f1(r.oursParts.backwardMsPerImage)
      } ms/image, AdamW step + repack ${r.oursParts.optimizerMs.toFixed(0)} ms per step, ` +
      `zeroGrad ${r.oursParts.zeroGradMs.toFixed(1)} ms; Wasm memory ${
        (r.memoryBytes / 1e6).toFixed(1)
      } MB`
    ),
  ];
  if (profile) {
    const p = profile;
    lines.push(
      `Per-op profile of one step, 1 thread, batch ${BATCH}, ${run.host.cpu}, load average ${
        loadAverage()[0]
      } (ms per step): forward ${p.forwardMs.toFixed(0)}, backward ${p.backwardMs.toFixed(0)} (${
        Object.entries(p.backwardByKind).map(([k, ms]) => `${k} ${ms.toFixed(0)}`).join(", ")
      }), AdamW step + repack ${p.optimizerMs.toFixed(0)} (update kernels ${
        p.updateKernelsMs.toFixed(0)
      }, repack kernels ${p.repackMs.toFixed(0)}), zeroGrad ${p.zeroGradMs.toFixed(1)}`,
      `Costliest backward ops: ${
        p.backwardTop.map((op) => `${op.name} ${op.kind} ${op.ms.toFixed(1)}`).join(", ")
      }`,
      `Wasm memory after a step at batch ${BATCH}: ${(p.peakWasmBytes / 1e6).toFixed(1)} MB; ` +
        `arena ${(p.arenaBytes / 1e6).toFixed(1)} MB, activations ${
          p.activationsMBPerImage.toFixed(1)
        } MB per image`,
    );
  }
  console.log(lines.join("\n"));
  const path = writeSection("training", run, {
    batch: BATCH,
    size: SIZE,
    rounds: ROUNDS,
    torch: torchVersion || null,
    rows: table,
    profile,
  });
  if (path) console.log(`Record: ${path}`);
}

if (import.meta.main) {
  if (!torchAvailable) console.log(`PyTorch rows skipped: ${PYTHON} cannot import torch`);
  const only = Deno.env.get("BENCH_TRAIN_ONLY"); // "full", "head" or "profile"
  const run = await startRun();
  const results: Rounds[] = [];
  for (const mode of ["full", "head"] as const) {
    if (only && only !== mode) continue;
    for (const threads of THREADS) results.push(await measure(mode, threads));
  }
  const profile = !only || only === "profile" ? await profileStep() : null;
  report(run, results, profile);
}
