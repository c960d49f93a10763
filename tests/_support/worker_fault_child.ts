/**
 * Child process of tests/worker_faults.test.ts: a model on two threads runs a
 * baseline forward, then for each fault given on the command line makes
 * worker 1 fail during (or just before) a forward, and records how that call
 * settled and whether the next call gives the baseline's bits. Prints one
 * JSON line; a hang or a host killed by a worker's error shows in the
 * parent as a deadline or a non-zero exit code.
 *
 * @module
 */

import { GoogLeNet, GoogLeNetError, type Tensor } from "../../mod.ts";
import { type InjectedFault, injectWorkerFault } from "../../src/backend/wasm/thread_pool.ts";
import { deterministicInput } from "../../tools/deterministic.ts";

const faults = Deno.args as InjectedFault[];
const model = await GoogLeNet.create({ auxLogits: false, threads: 2, seed: 7 });
const x = deterministicInput("worker-faults", [2, 3, 64, 64]);
const bits = async () =>
  Array.from(new Uint32Array(((await model.forward(x)) as Tensor).data.slice().buffer));
const baseline = await bits();
const same = (b: number[]) => b.length === baseline.length && b.every((v, i) => v === baseline[i]);

const report = [];
for (const fault of faults) {
  injectWorkerFault(fault);
  const start = performance.now();
  let settled: { ok: true; same: boolean } | {
    ok: false;
    name: string;
    library: boolean;
    message: string;
  };
  try {
    settled = { ok: true, same: same(await bits()) };
  } catch (error) {
    settled = {
      ok: false,
      name: (error as Error).name,
      library: error instanceof GoogLeNetError,
      message: (error as Error).message,
    };
  }
  const ms = performance.now() - start;
  const after = same(await bits());
  report.push({ fault, settled, ms, after });
}
const { threads } = model.backend as { threads?: number };
const disposed = await model.dispose().then(() => "settled", (e) => `rejected: ${e}`);
console.log(JSON.stringify({ threads, report, disposed }));
