/**
 * One training step's convolutions layer by layer, on one thread (or `T`
 * threads), batch 16 (`BENCH_TRAIN_BATCH`), 224x224, seed variant with aux
 * heads: the forward, input-gradient and weight-gradient time of every
 * convolution and linear layer (the fastest of 3 profiled passes) with its
 * rate in GFLOP/s (2 x multiply-adds / time), then the totals by operation
 * kind. A diagnostic for kernel work, not a record: it writes nothing.
 *
 *   deno run --config deno.dev.jsonc --allow-all bench/training_layers.ts
 *
 * @module
 */

import type { Op } from "../src/graph/ops.ts";
import { hostLine, startRun } from "./_record.ts";
import { warmTrainingStep } from "./_training_step.ts";

const BATCH = Number(Deno.env.get("BENCH_TRAIN_BATCH") ?? 16);
const THREADS = Number(Deno.env.get("T") ?? 1);
const run = await startRun();

const { model, backend, plans, input, grads } = await warmTrainingStep(
  "training layers",
  BATCH,
  THREADS,
);
try {
  // Multiply-adds and shape of each layer, from its weight-gradient operation.
  const shape = new Map<string, { macs: number; text: string }>();
  for (const op of plans.backward.ops as readonly Op[]) {
    if (op.kind !== "conv2d_grad_weight") continue;
    shape.set(op.name, {
      macs: op.n * op.oh * op.ow * op.c * op.kh * op.kw * op.oc,
      text: `${op.h}x${op.w} c${op.c} ${op.kh}x${op.kw}/${op.sh} oc${op.oc}`,
    });
  }
  const best = new Map<string, Record<string, number>>();
  for (let round = 0; round < 3; round++) {
    const forward = await backend.profile(plans.forward, input);
    const backward = await backend.profile(plans.backward, grads);
    for (const op of [...forward, ...backward]) {
      const row = best.get(op.name) ?? {};
      row[op.kind] = Math.min(row[op.kind] ?? Infinity, op.ms);
      best.set(op.name, row);
    }
  }
  console.log(`${hostLine(run)}; ${THREADS} thread(s), batch ${BATCH}, ms per step (GFLOP/s)`);
  const cell = (ms: number | undefined, macs: number) =>
    ms === undefined ? "-" : `${ms.toFixed(1)} (${(2 * macs / ms / 1e6).toFixed(0)})`;
  console.log("| layer | shape | forward | input grad | weight grad |\n|---|---|---:|---:|---:|");
  const rows = [...shape].sort((a, b) =>
    (best.get(b[0])?.conv2d_grad_weight ?? 0) - (best.get(a[0])?.conv2d_grad_weight ?? 0)
  );
  for (const [name, { macs, text }] of rows) {
    const r = best.get(name) ?? {};
    // Fused forward 1x1s (inception3a.branch1.conv+96+16) are timed under their first layer's name.
    const fused = [...best.keys()].find((k) => k.startsWith(`${name}+`));
    const fwd = r.conv2d ?? r.linear;
    console.log(
      `| ${name} | ${text} | ${fused ? "fused" : cell(fwd, macs)} | ${
        cell(r.conv2d_grad_input, macs)
      } | ${cell(r.conv2d_grad_weight, macs)} |`,
    );
  }
  const totals: Record<string, number> = {};
  for (const row of best.values()) {
    for (const [kind, ms] of Object.entries(row)) totals[kind] = (totals[kind] ?? 0) + ms;
  }
  console.log(
    "Totals, ms per step:",
    Object.entries(totals).sort((a, b) => b[1] - a[1]).map(([k, ms]) => `${k} ${ms.toFixed(1)}`)
      .join(", "),
  );
} finally {
  await model.dispose();
}
