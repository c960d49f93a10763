/**
 * The thread pool's work split (`src/backend/wasm/executor.ts`): every chunk
 * of every step runs exactly once whichever thread claims it, each thread
 * takes its own chunks first, chunk bounds cover the work without overlap,
 * and the shared counters stay in step across steps however the claims
 * interleave. Threads are simulated in one isolate, each `WorkQueue` playing
 * one thread over one shared control block.
 */

import assert from "node:assert/strict";
import type { Plan } from "../src/graph/ops.ts";
import { controlWords } from "../src/backend/wasm/barrier.ts";
import { chunkCount, schedule, split, WorkQueue } from "../src/backend/wasm/executor.ts";
import { BackendError, GoogLeNet, ShapeError, Tensor } from "../mod.ts";
import { WasmBackend } from "../src/backend/wasm/backend.ts";
import { injectWorkerFault } from "../src/backend/wasm/thread_pool.ts";

/** A control block like the pool's, for `threads` threads. */
function control(threads: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(controlWords(threads) * 4));
}

/** A step's chunks as the schedule lays them out: thread t's list holds "t:i" items. */
function lists(sizes: number[]): string[][] {
  return sizes.map((n, t) => Array.from({ length: n }, (_, i) => `${t}:${i}`));
}

Deno.test("each chunk of each step runs exactly once, in any order of threads", () => {
  const threads = 3;
  const steps = [[2, 1, 2], [0, 1, 0], [3, 3, 2], [1, 0, 2], [4, 4, 4]].map(lists);
  // Per step, which thread asks first; the others follow in order.
  for (const first of [0, 1, 2]) {
    const block = control(threads);
    const queues = Array.from({ length: threads }, () => new WorkQueue(block, threads));
    for (const [s, step] of steps.entries()) {
      const ran = new Map<string, number>();
      for (let k = 0; k < threads; k++) {
        const tid = (first + k + s) % threads;
        queues[tid].forEach(step, tid, (item) => ran.set(item, (ran.get(item) ?? 0) + 1));
      }
      assert.deepEqual(
        [...ran.entries()].sort(),
        step.flat().map((item) => [item, 1]).sort(),
        `step ${s}, thread ${first} first`,
      );
    }
  }
});

Deno.test("a thread runs its own chunks first, then takes what is left of the others'", () => {
  const block = control(2);
  const [a, b] = [new WorkQueue(block, 2), new WorkQueue(block, 2)];
  const ran: string[] = [];
  // Thread 1 starts late: thread 0 has done its own two chunks and takes thread 1's
  // first; inside it, thread 1 finds its first taken and runs the rest of its list.
  a.forEach(lists([2, 3]), 0, (item) => {
    ran.push(`a${item}`);
    if (item === "1:0") b.forEach(lists([2, 3]), 1, (other) => ran.push(`b${other}`));
  });
  assert.deepEqual(ran, ["a0:0", "a0:1", "a1:0", "b1:1", "b1:2"]);
  // The next step starts cleanly on both counters.
  const next: string[] = [];
  b.forEach(lists([1, 1]), 1, (item) => next.push(`b${item}`));
  a.forEach(lists([1, 1]), 0, (item) => next.push(`a${item}`));
  assert.deepEqual(next, ["b1:0", "b0:0"]);
});

Deno.test("one thread runs every chunk of its list in order, step after step", () => {
  const queue = new WorkQueue(control(1), 1);
  const ran: string[] = [];
  queue.forEach(lists([3]), 0, (item) => ran.push(item));
  queue.forEach(lists([2]), 0, (item) => ran.push(item));
  assert.deepEqual(ran, ["0:0", "0:1", "0:2", "0:0", "0:1"]);
});

Deno.test("chunk bounds tile the work: no gap, no overlap, on the grain, near-equal sizes", () => {
  for (
    const [units, threads, least, grain] of [[196, 2, 24, 6], [49, 2, 24, 6], [3136, 4, 24, 6]]
  ) {
    const count = chunkCount(units, threads, least);
    assert.ok(count >= threads && count <= 4 * threads, `${count} chunks for ${units} units`);
    let next = 0;
    const sizes: number[] = [];
    for (let i = 0; i < count; i++) {
      const [start, end] = split(units, i, count, grain);
      assert.equal(start, next, `chunk ${i} of ${units} starts where the last ended`);
      assert.ok(start % grain === 0, `chunk ${i} starts on the grain`);
      if (end < units) sizes.push(end - start);
      next = end;
    }
    assert.equal(next, units);
    assert.ok(
      Math.max(...sizes) - Math.min(...sizes) <= grain,
      `chunk sizes ${sizes} differ by at most one grain`,
    );
  }
  assert.equal(chunkCount(1000, 1, 6), 1);
});

Deno.test("profile with chunksOf times each chunk of that many threads' schedule, with its step and list", async () => {
  const model = await GoogLeNet.create({ variant: "seed", auxLogits: false, threads: 1 });
  try {
    const backend = model.backend as WasmBackend;
    const plan = model.plan([2, 3, 64, 64]);
    const input = Tensor.zeros([2, 3, 64, 64]);
    const cut = schedule(backend.kernels, plan, 2);
    const expected = cut.flatMap((lists, step) =>
      lists.flatMap((list, thread) =>
        list.map((c) => `${step} ${thread} ${plan.ops[c.op].name} ${plan.ops[c.op].kind}`)
      )
    );
    const timed = await backend.profile(plan, input, 2);
    assert.deepEqual(timed.map((c) => `${c.step} ${c.thread} ${c.name} ${c.kind}`), expected);
    assert.ok(timed.every((c) => c.ms >= 0));
    assert.ok(expected.length > plan.ops.length, "2 threads' chunks outnumber the operations");
    assert.equal((await backend.profile(plan, input)).length, plan.ops.length);
  } finally {
    await model.dispose();
  }
});

Deno.test("trace records every chunk of the 2-thread schedule once and each thread's barrier per step", async () => {
  const model = await GoogLeNet.create({ variant: "seed", auxLogits: false, threads: 2 });
  try {
    const backend = model.backend as WasmBackend;
    if (backend.threads !== 2) {
      console.log("SKIPPED: no workers in this runtime, so nothing to trace");
      return;
    }
    const plan = model.plan([2, 3, 64, 64]);
    const input = Tensor.zeros([2, 3, 64, 64]);
    const key = (step: number, c: { op: number }) => `${step} ${c.op}`;
    const expected = schedule(backend.kernels, plan, 2).flatMap((lists, step) =>
      lists.flat().map((c) => key(step, c))
    ).sort();
    const traced = await backend.trace(plan, input, []);
    const chunks = traced.filter((c) => c.kind !== "barrier");
    assert.deepEqual(chunks.map((c) => key(c.step, c)).sort(), expected);
    for (const c of chunks) {
      assert.equal(c.name, plan.ops[c.op].name);
      assert.ok(c.end >= c.start && (c.thread === 0 || c.thread === 1));
    }
    const barriers = traced.filter((c) => c.kind === "barrier");
    assert.deepEqual(
      barriers.map((c) => `${c.thread} ${c.step}`).sort(),
      [0, 1].flatMap((t) => plan.steps.map((_, s) => `${t} ${s}`)).sort(),
    );
    // Each thread leaves a step's barrier before it starts a chunk of the next.
    for (const c of chunks) {
      const before = barriers.find((b) => b.thread === c.thread && b.step === c.step - 1);
      assert.ok(!before || before.end <= c.start);
    }
    // The run after a traced one (untraced) gives the same logits as the one before it.
    const [before] = await backend.run(plan, input, []);
    await backend.trace(plan, input, []);
    assert.deepEqual((await backend.run(plan, input, []))[0], before);
  } finally {
    await model.dispose();
  }
});

Deno.test("trace with a worker that died before it: the new workers trace the run too", async () => {
  const model = await GoogLeNet.create({ variant: "seed", auxLogits: false, threads: 2 });
  try {
    const backend = model.backend as WasmBackend;
    if (backend.threads !== 2) {
      console.log("SKIPPED: no workers in this runtime, so nothing to trace");
      return;
    }
    const plan = model.plan([1, 3, 64, 64]);
    const input = Tensor.zeros([1, 3, 64, 64]);
    // Chunks by step and operation (either thread may claim one), barriers by thread and step.
    const key = (chunks: { kind: string; thread: number; step: number; op: number }[]) =>
      chunks.map((c) => c.kind === "barrier" ? `${c.thread} ${c.step}` : `${c.step} ${c.op}`)
        .sort();
    const expected = key(await backend.trace(plan, input, []));
    // Worker 1 is terminated before the trace reaches it: it never answers, its crew is let
    // go, and the run goes to new workers, which must be given the trace as well.
    injectWorkerFault("terminate");
    const traced = await backend.trace(plan, input, []);
    assert.deepEqual(key(traced), expected);
  } finally {
    injectWorkerFault(null);
    await model.dispose();
  }
});

Deno.test("run and trace refuse an input of another size than the plan's (ShapeError), and change nothing", async () => {
  const model = await GoogLeNet.create({ variant: "seed", auxLogits: false, threads: 2 });
  try {
    const backend = model.backend as WasmBackend;
    const plan = model.plan([1, 3, 64, 64]);
    const input = new Tensor(new Float32Array(3 * 64 * 64).fill(0.5), [1, 3, 64, 64]);
    const [before] = await backend.run(plan, input, []);
    // Copied in as it came, a larger input ran over the input buffer into the next ones (or
    // past the memory's end), and a smaller one left the previous run's pixels in place.
    for (const shape of [[2, 3, 64, 64], [1, 3, 32, 32], [1, 3, 64, 65]]) {
      const wrong = Tensor.zeros(shape);
      const refused = (e: unknown) =>
        e instanceof ShapeError &&
        (e as Error).message.startsWith(
          `Expected an input of ${3 * 64 * 64} values for this plan (the shape it was made for), ` +
            `got [${shape.join(", ")}]`,
        );
      await assert.rejects(backend.run(plan, wrong, []), refused, `run ${shape}`);
      await assert.rejects(backend.trace(plan, wrong, []), refused, `trace ${shape}`);
    }
    assert.deepEqual((await backend.run(plan, input, []))[0], before);
  } finally {
    await model.dispose();
  }
});

Deno.test("run, trace and profile refuse a plan of another model's or backend kind's weight layout (BackendError naming it); one laid out alike runs", async () => {
  const shape = [1, 3, 64, 64];
  const input = new Tensor(new Float32Array(3 * 64 * 64).fill(0.5), shape);
  const create = (options: Parameters<typeof GoogLeNet.create>[0]) =>
    GoogLeNet.create({ variant: "seed", auxLogits: false, threads: 1, ...options });
  const model = await create({});
  const models = [model];
  try {
    const backend = model.backend as WasmBackend;
    const [before] = await backend.run(model.plan(shape), input, []);
    const refused = (pattern: RegExp) => (e: unknown) =>
      e instanceof BackendError && pattern.test((e as Error).message);
    const refuse = async (plan: Plan, pattern: RegExp, on: WasmBackend = backend) => {
      await assert.rejects(on.run(plan, input, []), refused(pattern), `run ${pattern}`);
      await assert.rejects(on.trace(plan, input, []), refused(pattern), `trace ${pattern}`);
      await assert.rejects(on.profile(plan, input), refused(pattern), `profile ${pattern}`);
    };
    // Another class count: its fc panels are smaller; run as given, the plan read this
    // model's fc weights as 10 columns (and every layer after a size change elsewhere).
    const ten = await create({ numClasses: 10 });
    models.push(ten);
    await refuse(
      ten.plan(shape),
      /^This plan was made for another weight layout than this backend holds: it has "fc: packed \d+ \(1024x10\).*" where this backend has "fc: packed \d+ \(1024x1000\).*": run a plan on the backend of the model that made it/,
    );
    // The same classes, other Winograd forms (prefer speed): the layers' forms differ.
    const speed = await create({ prefer: "speed" });
    models.push(speed);
    await refuse(
      speed.plan(shape),
      /another weight layout .*: it has "inception4a\.branch2\.1\.conv: .*\(864x208 f4x3\)" where this backend has ".*\(864x208 f2x3\)"/,
    );
    // Other trainable parameters: the gradients lie elsewhere (the training plans' offsets).
    const head = await create({ trainable: ["fc."] });
    models.push(head);
    await refuse(
      head.trainingPlan(shape).forward,
      /another weight layout .*: it has "conv1\.conv training: none" where this backend has "conv1\.conv training: grad \d+ \(147x64\)"/,
    );
    // Another backend kind's layout (WebGPU's forms have no Winograd form).
    const plan = model.plan(shape);
    const gpu = { ...plan.weightLayout!, backend: "webgpu" as const };
    await refuse(
      { ...plan, weightLayout: gpu },
      /^This plan was made for the webgpu backend's weight layout, but this backend holds the wasm layout/,
    );
    // A plan naming no layout on a model's backend, and a model's plan on a bare backend.
    await refuse({ ...plan, weightLayout: null }, /^This plan names no weight layout/);
    const bare = await WasmBackend.create({
      weightFloats: backend.weights().length,
      threads: 1,
      memoryLimit: 1 << 30,
    });
    try {
      await refuse(
        plan,
        /^This plan was made for a model's wasm weight layout, but this wasm backend holds no model's weights/,
        bare,
      );
    } finally {
      await bare.dispose();
    }
    // A model laid out alike (same options): its plan provably matches, and runs as this one's.
    const twin = await create({});
    models.push(twin);
    assert.notEqual(twin.plan(shape).weightLayout, plan.weightLayout);
    assert.deepEqual((await backend.run(twin.plan(shape), input, []))[0], before);
    assert.deepEqual((await backend.run(plan, input, []))[0], before);
  } finally {
    for (const m of models) await m.dispose();
  }
});
