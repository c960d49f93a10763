/**
 * How each operation of a training step scales from 1 to `T` threads
 * (default 2), in one process: each round profiles the forward and backward
 * plans operation by operation on the calling thread (the 1-thread time),
 * times the chunks of the `T`-thread schedule one by one on the calling
 * thread (`alone`: what the chunks cost without another thread running), then
 * runs both plans on `T` threads with a trace of every chunk and barrier wait
 * ({@linkcode WasmBackend.trace}). Batch 16 (`BENCH_TRAIN_BATCH`), 224x224,
 * seed variant with aux heads, median of `ROUNDS` rounds (default 5).
 *
 * Per operation kind and per operation: the 1-thread time, the threads'
 * summed chunk time on `T` threads (`work`: above `alone` when the threads
 * slow each other down, by sharing memory bandwidth, caches or a core), and
 * its share of the steps' wall time on `T` threads (each step's wall time
 * split by the operations' work in it), whose ratio to the 1-thread time is
 * the operation's speed-up. Then where the `T`-thread wall time goes: chunks,
 * barrier waits (imbalance and wake-ups), and the time between the two plans.
 * A diagnostic, not a record: it writes nothing.
 *
 *   T=2 deno run --config deno.dev.jsonc --allow-all bench/thread_scaling.ts
 *
 * @module
 */

import type { TracedChunk } from "../src/backend/wasm/backend.ts";
import type { Plan } from "../src/graph/ops.ts";
import { hostLine, startRun } from "./_record.ts";
import { warmTrainingStep } from "./_training_step.ts";

const BATCH = Number(Deno.env.get("BENCH_TRAIN_BATCH") ?? 16);
const THREADS = Number(Deno.env.get("T") ?? 2);
const ROUNDS = Number(Deno.env.get("ROUNDS") ?? 5);
const TOP = Number(Deno.env.get("TOP") ?? 30);
const run = await startRun();

/**
 * On-CPU and run-queue (runnable, not running: preempted) ms of the calling
 * thread and the kernel workers, from Linux's schedstat; empty elsewhere.
 */
function schedTimes(): { cpu: number; waiting: number }[] {
  const read = (path: string) => {
    const [cpu, waiting] = Deno.readTextFileSync(path).split(" ").map(Number);
    return { cpu: cpu / 1e6, waiting: waiting / 1e6 };
  };
  try {
    const times = [read("/proc/thread-self/schedstat")];
    for (const e of Deno.readDirSync("/proc/self/task")) {
      const comm = Deno.readTextFileSync(`/proc/self/task/${e.name}/comm`).trim();
      if (comm.startsWith("worker-")) times.push(read(`/proc/self/task/${e.name}/schedstat`));
    }
    return times;
  } catch {
    return [];
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Per operation key (`plan:index`): 1-thread ms, chunks alone, T-thread work and wall share. */
interface Row {
  name: string;
  kind: string;
  one: number[];
  alone: number[];
  work: number[];
  wall: number[];
}

const { model, backend, plans, input, grads } = await warmTrainingStep(
  "thread scaling",
  BATCH,
  THREADS,
);
try {
  const rows = new Map<string, Row>();
  const row = (plan: string, index: number, op: { name: string; kind: string }) => {
    const key = `${plan}:${index}`;
    let r = rows.get(key);
    if (!r) {
      r = { name: op.name, kind: op.kind, one: [], alone: [], work: [], wall: [] };
      rows.set(key, r);
    }
    return r;
  };
  const totals: Record<string, number[]> = {
    wall: [],
    chunks: [],
    barrier: [],
    between: [],
    one: [],
    onCpu: [],
    preempted: [],
  };
  const passes: [string, Plan, typeof input][] = [
    ["forward", plans.forward, input],
    ["backward", plans.backward, grads],
  ];
  for (let round = 0; round < ROUNDS; round++) {
    const sums: Record<string, number> = {};
    const add = (k: string, ms: number) => sums[k] = (sums[k] ?? 0) + ms;
    const round1: Map<string, number> = new Map();
    const roundAlone: Map<string, number> = new Map();
    const roundWork: Map<string, number> = new Map();
    const roundWall: Map<string, number> = new Map();
    for (const [name, plan, x] of passes) {
      // Profiles name their operation by layer and kind, which is one operation of a plan.
      const index = new Map(plan.ops.map((o, i) => [`${o.name} ${o.kind}`, i]));
      if (index.size !== plan.ops.length) throw new Error(`${name}: layer and kind repeat`);
      for (const c of await backend.profile(plan, x)) {
        round1.set(`${name}:${index.get(`${c.name} ${c.kind}`)}`, c.ms);
        add("one", c.ms);
      }
      // The chunks of the T-thread schedule, one by one.
      const alone = await backend.profile(plan, x, THREADS);
      for (const c of alone) {
        const key = `${name}:${index.get(`${c.name} ${c.kind}`)}`;
        roundAlone.set(key, (roundAlone.get(key) ?? 0) + c.ms);
      }
    }
    // The T-thread runs, back to back as in a training step.
    const traces: TracedChunk[][] = [];
    const seeds = new Array(plans.forward.dropoutStreams).fill(1);
    const s0 = schedTimes();
    const t0 = performance.timeOrigin + performance.now();
    traces.push(await backend.trace(plans.forward, input, seeds));
    traces.push(await backend.trace(plans.backward, grads, seeds));
    const t2 = performance.timeOrigin + performance.now();
    const s1 = schedTimes();
    if (s0.length === s1.length) {
      add("onCpu", s1.reduce((a, t, i) => a + t.cpu - s0[i].cpu, 0));
      add("preempted", s1.reduce((a, t, i) => a + t.waiting - s0[i].waiting, 0));
    }
    for (const [p, trace] of traces.entries()) {
      const [name, plan] = passes[p];
      // Thread 0's step ends (barrier exits) bound each step's wall time.
      const first = Math.min(...trace.map((c) => c.start));
      const ends = new Map<number, number>();
      for (const c of trace) if (c.kind === "barrier" && c.thread === 0) ends.set(c.step, c.end);
      let from = first;
      for (let s = 0; s < plan.steps.length; s++) {
        const to = ends.get(s)!;
        const inStep = trace.filter((c) => c.step === s && c.kind !== "barrier");
        const work = new Map<number, number>();
        for (const c of inStep) work.set(c.op, (work.get(c.op) ?? 0) + c.end - c.start);
        const total = [...work.values()].reduce((a, b) => a + b, 0);
        for (const [op, ms] of work) {
          const key = `${name}:${op}`;
          roundWork.set(key, ms);
          roundWall.set(key, (to - from) * ms / total);
        }
        add("chunks", total);
        from = to;
      }
      add(
        "barrier",
        trace.filter((c) => c.kind === "barrier").reduce((a, c) => a + c.end - c.start, 0),
      );
      add("wall", from - first);
    }
    add("between", t2 - t0 - sums.wall);
    for (const [k, v] of Object.entries(sums)) totals[k].push(v);
    for (const [name, plan] of passes) {
      plan.ops.forEach((op, i) => {
        const key = `${name}:${i}`;
        const r = row(name, i, op);
        r.one.push(round1.get(key) ?? 0);
        r.alone.push(roundAlone.get(key) ?? 0);
        r.work.push(roundWork.get(key) ?? 0);
        r.wall.push(roundWall.get(key) ?? 0);
      });
    }
  }
  console.log(
    `${hostLine(run)}; ${THREADS} threads, batch ${BATCH}, ms per step, median of ${ROUNDS} rounds`,
  );
  const m = (xs: number[]) => median(xs);
  const kinds = new Map<string, { one: number; alone: number; work: number; wall: number }>();
  for (const r of rows.values()) {
    const k = kinds.get(r.kind) ?? { one: 0, alone: 0, work: 0, wall: 0 };
    k.one += m(r.one);
    k.alone += m(r.alone);
    k.work += m(r.work);
    k.wall += m(r.wall);
    kinds.set(r.kind, k);
  }
  const wall = m(totals.wall);
  const fmt = (x: number) => x.toFixed(1);
  const line = (label: string, one: number, alone: number, work: number, w: number) =>
    `| ${label} | ${fmt(one)} | ${fmt(alone)} | ${fmt(work)} | ${(work / alone).toFixed(2)} | ${
      fmt(w)
    } | ${(one / w).toFixed(2)} | ${(100 * w / wall).toFixed(1)} | ${fmt(w - one / THREADS)} |`;
  const header =
    `| op | 1t ms | ${THREADS}t chunks alone | ${THREADS}t work | work/alone | ${THREADS}t wall | speed-up | % of ${THREADS}t wall | lost vs 1t/${THREADS} |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|`;
  console.log("By kind:\n" + header);
  for (const [kind, k] of [...kinds].sort((a, b) => b[1].wall - a[1].wall)) {
    console.log(line(kind, k.one, k.alone, k.work, k.wall));
  }
  console.log(`\nOperations with the most time lost against 1t/${THREADS}:\n` + header);
  const ranked = [...rows.entries()].sort((a, b) =>
    (m(b[1].wall) - m(b[1].one) / THREADS) - (m(a[1].wall) - m(a[1].one) / THREADS)
  );
  for (const [key, r] of ranked.slice(0, TOP)) {
    console.log(
      line(`${key.split(":")[0]} ${r.name} ${r.kind}`, m(r.one), m(r.alone), m(r.work), m(r.wall)),
    );
  }
  console.log(
    `\nTotals (median): 1 thread ${fmt(m(totals.one))} ms; ${THREADS} threads: wall ${
      fmt(wall)
    } (speed-up ${(m(totals.one) / wall).toFixed(2)}), chunk work ${fmt(m(totals.chunks))} (${
      (m(totals.chunks) / m(totals.one)).toFixed(2)
    }x the 1-thread time), barrier waits ${
      fmt(m(totals.barrier))
    } (all threads), between and around the plans ${fmt(m(totals.between))}`,
  );
  if (totals.onCpu.length) {
    console.log(
      `Threads' on-CPU time during the ${THREADS}-thread runs ${
        fmt(m(totals.onCpu))
      } ms, runnable but preempted ${
        fmt(m(totals.preempted))
      } ms (summed over threads; Linux schedstat)`,
    );
  }
} finally {
  await model.dispose();
}
