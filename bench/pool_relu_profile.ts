/**
 * One training step's max pool backwards and ReLU masks op by op (ms per
 * step, the fastest of 3 profiled passes; on one thread the process's CPU
 * time, on more wall time), one thread (or `T`), batch 16
 * (`BENCH_TRAIN_BATCH`), seed variant with aux heads, plus the totals by
 * operation kind. A diagnostic for the pool work, not a record.
 *
 *   deno run --config deno.dev.jsonc --allow-all bench/pool_relu_profile.ts
 *
 * @module
 */

import process from "node:process";
import { hostLine, startRun } from "./_record.ts";
import { warmTrainingStep } from "./_training_step.ts";

const BATCH = Number(Deno.env.get("BENCH_TRAIN_BATCH") ?? 16);
const THREADS = Number(Deno.env.get("T") ?? 1);
const run = await startRun();
const { model, backend, plans, input, grads } = await warmTrainingStep(
  "pool relu profile",
  BATCH,
  THREADS,
);
try {
  // On one thread the process's CPU time is the operation's: waiting for a core (the host is
  // shared) does not count. The profile reads performance.now().
  if (THREADS === 1) {
    performance.now = () => {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1000;
    };
  }
  const best = new Map<string, number>();
  const kinds = ["maxpool2d_grad", "relu_grad", "maxpool2d"];
  for (let round = 0; round < 3; round++) {
    await backend.profile(plans.forward, input);
    const ops = [
      ...(await backend.profile(plans.forward, input)),
      ...(await backend.profile(plans.backward, grads)),
    ];
    const seen = new Map<string, number>();
    for (const op of ops) {
      const key = `${op.kind} ${op.name}`;
      seen.set(key, (seen.get(key) ?? 0) + op.ms);
    }
    for (const [key, ms] of seen) best.set(key, Math.min(best.get(key) ?? Infinity, ms));
  }
  console.log(
    `${hostLine(run)}; ${THREADS} thread(s), batch ${BATCH}, ms per step (${
      THREADS === 1 ? "CPU" : "wall"
    } time)`,
  );
  const totals: Record<string, number> = {};
  for (const [key, ms] of best) {
    const kind = key.split(" ")[0];
    totals[kind] = (totals[kind] ?? 0) + ms;
    if (kinds.includes(kind)) console.log(`| ${key} | ${ms.toFixed(2)} |`);
  }
  console.log(
    "Totals, ms per step:",
    Object.entries(totals).sort((a, b) => b[1] - a[1]).map(([k, ms]) => `${k} ${ms.toFixed(1)}`)
      .join(", "),
  );
} finally {
  await model.dispose();
}
