/**
 * Child process of tests/worker_faults.test.ts: a model on two threads runs a
 * baseline forward, then for each fault given on the command line makes
 * worker 1 fail during (or just before) a forward (or, for "idle", waits
 * until idle workers have ended), and records how that call
 * settled and whether the next call gives the baseline's bits. Prints one
 * JSON line; a hang or a host killed by a worker's error shows in the
 * parent as a deadline or a non-zero exit code.
 *
 * @module
 */

import { GoogLeNet, GoogLeNetError, type Tensor } from "../../mod.ts";
import {
  IDLE_MS,
  type InjectedFault,
  injectWorkerFault,
} from "../../src/backend/wasm/thread_pool.ts";
import { deterministicInput } from "../../tools/deterministic.ts";

/** The faults to make, and "idle": wait until the idle workers have ended, then run. */
const faults = Deno.args as (InjectedFault | "idle")[];
const model = await GoogLeNet.create({ auxLogits: false, threads: 2, seed: 7 });
const x = deterministicInput("worker-faults", [2, 3, 64, 64]);
const bits = async () =>
  Array.from(new Uint32Array(((await model.forward(x)) as Tensor).data.slice().buffer));
const baseline = await bits();
const same = (b: number[]) => b.length === baseline.length && b.every((v, i) => v === baseline[i]);

/** How a call settled: its bits equal the baseline's, or the error it rejected with. */
type Settled = { ok: true; same: boolean } | {
  ok: false;
  name: string;
  library: boolean;
  message: string;
};
async function call(): Promise<Settled> {
  try {
    return { ok: true, same: same(await bits()) };
  } catch (error) {
    return {
      ok: false,
      name: (error as Error).name,
      library: error instanceof GoogLeNetError,
      message: (error as Error).message,
    };
  }
}

const report = [];
for (const fault of faults) {
  if (fault === "idle") await new Promise((r) => setTimeout(r, IDLE_MS + 500));
  else injectWorkerFault(fault);
  const start = performance.now();
  const settled = await call();
  const ms = performance.now() - start;
  // The calls after it, up to the first that succeeds (a worker that died
  // after its share of a run is found by the next run).
  const later: Settled[] = [];
  do later.push(await call()); while (!later.at(-1)!.ok && later.length < 3);
  report.push({ fault, settled, ms, later });
}
const { threads } = model.backend as { threads?: number };
const disposed = await model.dispose().then(() => "settled", (e) => `rejected: ${e}`);
console.log(JSON.stringify({ threads, report, disposed }));
