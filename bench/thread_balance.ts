/**
 * Where a training step on `T` threads (default 2) loses to imbalance: times
 * every chunk of the `T`-thread schedules of the forward and backward plans
 * on the calling thread, one by one (the fastest of `ROUNDS` passes, default
 * 3; batch 16, 224x224, seed variant with aux heads), then replays each
 * plan step's claims as the {@linkcode WorkQueue} hands them out (each thread
 * its own list first, then the others') and prints the steps whose busiest
 * thread ends furthest past a perfect split (their chunk count and sizes),
 * and the total lost by operation kind. Then the real step on `T` threads
 * (wall time of forward + backward, optimizer step, zeroGrad) against the
 * replayed kernels' sum, which bounds what barriers and the TypeScript between
 * plans cost. A diagnostic, not a record: it writes nothing.
 *
 *   T=2 deno run --config deno.dev.jsonc --allow-all bench/thread_balance.ts
 *
 * @module
 */

import type { ProfiledChunk } from "../src/backend/wasm/backend.ts";
import { hostLine, startRun } from "./_record.ts";
import { warmTrainingStep } from "./_training_step.ts";

const BATCH = Number(Deno.env.get("BENCH_TRAIN_BATCH") ?? 16);
const THREADS = Number(Deno.env.get("T") ?? 2);
const ROUNDS = Number(Deno.env.get("ROUNDS") ?? 3);
const run = await startRun();

/**
 * The busiest thread's end when `threads` threads claim the chunks of one
 * step (`lists[t]` thread t's list of chunk times, in order) as WorkQueue does.
 */
function replay(lists: number[][], threads: number): number {
  const next = lists.map(() => 0);
  const clock = new Array(threads).fill(0);
  const owner = Array.from({ length: threads }, (_, t) => t);
  const seen = new Array(threads).fill(0);
  const done = new Array(threads).fill(false);
  for (;;) {
    // The thread that is free first claims next.
    let t = -1;
    for (let u = 0; u < threads; u++) if (!done[u] && (t < 0 || clock[u] < clock[t])) t = u;
    if (t < 0) break;
    while (seen[t] < threads && next[owner[t]] >= lists[owner[t]].length) {
      seen[t]++;
      owner[t] = (t + seen[t]) % threads;
    }
    if (seen[t] >= threads) {
      done[t] = true;
      continue;
    }
    clock[t] += lists[owner[t]][next[owner[t]]++];
  }
  return Math.max(...clock);
}

const { model, optimizer: opt, backend, plans, input, labels, grads } = await warmTrainingStep(
  "thread balance",
  BATCH,
  THREADS,
);
try {
  // The fastest time of each chunk over the rounds (same plan, same chunk order each pass).
  let best: ProfiledChunk[][] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const passes = [
      await backend.profile(plans.forward, input, THREADS),
      await backend.profile(plans.backward, grads, THREADS),
    ];
    best = round === 0
      ? passes
      : best.map((pass, p) => pass.map((c, i) => (passes[p][i].ms < c.ms ? passes[p][i] : c)));
  }
  console.log(`${hostLine(run)}; ${THREADS} threads, batch ${BATCH}, ms per step`);
  const byKind: Record<string, number> = {};
  const rows: { lost: number; text: string }[] = [];
  let kernels = 0, replayed = 0;
  for (const [p, pass] of best.entries()) {
    const steps = new Map<number, ProfiledChunk[]>();
    for (const c of pass) steps.set(c.step, [...(steps.get(c.step) ?? []), c]);
    for (const [step, chunks] of steps) {
      const lists = Array.from(
        { length: THREADS },
        (_, t) => chunks.filter((c) => c.thread === t).map((c) => c.ms),
      );
      const total = chunks.reduce((s, c) => s + c.ms, 0);
      const end = replay(lists, THREADS);
      const lost = end - total / THREADS;
      kernels += total;
      replayed += end;
      // The step's loss goes to its largest operation's kind.
      const ops = new Map<string, { kind: string; ms: number; sizes: number[] }>();
      for (const c of chunks) {
        const o = ops.get(c.name + c.kind) ?? { kind: c.kind, ms: 0, sizes: [] };
        o.ms += c.ms;
        o.sizes.push(c.ms);
        ops.set(c.name + c.kind, o);
      }
      const top = [...ops.entries()].sort((a, b) => b[1].ms - a[1].ms);
      byKind[top[0][1].kind] = (byKind[top[0][1].kind] ?? 0) + lost;
      rows.push({
        lost,
        text: `${p ? "backward" : "forward"} step ${step}: lost ${lost.toFixed(2)} of ${
          end.toFixed(2)
        } ms; ${
          top.slice(0, 3).map(([key, o]) =>
            `${key.slice(0, key.length - o.kind.length)} ${o.kind} [${
              o.sizes.map((s) => s.toFixed(2)).join(" ")
            }]`
          ).join("; ")
        }`,
      });
    }
  }
  rows.sort((a, b) => b.lost - a.lost);
  for (const r of rows.slice(0, 25)) console.log(r.text);
  console.log(
    `Kernels ${kernels.toFixed(1)} ms of one thread's time; replayed on ${THREADS}: ${
      replayed.toFixed(1)
    } (perfect ${(kernels / THREADS).toFixed(1)}, lost ${
      (replayed - kernels / THREADS).toFixed(1)
    })`,
  );
  console.log(
    "Lost by the step's largest kind:",
    Object.entries(byKind).sort((a, b) => b[1] - a[1]).map(([k, ms]) => `${k} ${ms.toFixed(2)}`)
      .join(", "),
  );
  // The real step on THREADS threads, its parts' wall time (median of ROUNDS + 2).
  const parts: Record<string, number[]> = { backward: [], step: [], zeroGrad: [] };
  for (let round = 0; round < ROUNDS + 2; round++) {
    let t = performance.now();
    await model.backward(input, labels);
    parts.backward.push(performance.now() - t);
    t = performance.now();
    await opt.step();
    parts.step.push(performance.now() - t);
    t = performance.now();
    await opt.zeroGrad();
    parts.zeroGrad.push(performance.now() - t);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  console.log(
    `Real step on ${THREADS} threads, median wall ms: ${
      Object.entries(parts).map(([k, xs]) => `${k} ${median(xs).toFixed(1)}`).join(", ")
    } (forward + backward against the replay: ${(median(parts.backward) - replayed).toFixed(1)})`,
  );
} finally {
  await model.dispose();
}
