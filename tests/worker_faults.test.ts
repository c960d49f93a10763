/**
 * Worker faults (issue 14, class 3), in a child process so that a hang (the
 * calling thread spinning at a barrier for a worker that is gone) or a host
 * ended by a worker's error fails the test instead of the test runner:
 * worker 1 of a two-thread model throws an uncaught error as a run starts,
 * ends itself without a word, is terminated as a runtime would, or throws
 * between runs (tests/_support/worker_fault_child.ts, through the pool's
 * test hook `injectWorkerFault`). A fault during a run rejects that call with
 * a `BackendError`; a fault between runs is absorbed (new workers, the right
 * result), as are workers that ended idle. Every later call gives the first
 * call's logits bit for bit,
 * `dispose()` settles, and the child exits 0 by itself.
 */

import assert from "node:assert/strict";
import { childJson, runDeno } from "./_support/edge_child.ts";

type Settled = { ok: true; same: boolean } | {
  ok: false;
  name: string;
  library: boolean;
  message: string;
};

interface Report {
  threads: number;
  report: { fault: string; settled: Settled; ms: number; later: Settled[] }[];
  disposed: string;
}

/** A call that failed because of a worker: a BackendError that says which. */
function assertWorkerError(s: Settled, what: string): void {
  assert.equal(s.ok, false, `${what}: rejects`);
  if (s.ok) return;
  assert.equal(s.name, "BackendError", what);
  assert.ok(s.library, `${what}: a GoogLeNetError`);
  assert.match(s.message, /^Kernel worker 1 (failed|stopped) during the run/, what);
}

const CHILD = new URL("./_support/worker_fault_child.ts", import.meta.url).pathname;

Deno.test("a worker that fails is caught: the call rejects, new workers give the same bits, the host lives", async () => {
  if (typeof Worker !== "function" || typeof SharedArrayBuffer !== "function") {
    console.log("  skipped: no Worker or SharedArrayBuffer in this runtime");
    return;
  }
  const faults = ["throw", "exit", "terminate", "throw-now", "idle"];
  const result = await runDeno(["run", "--allow-read", "--no-prompt", CHILD, ...faults], {
    cwd: new URL("../", import.meta.url).pathname,
    timeoutMs: 120_000,
  });
  const { threads, report, disposed } = childJson<Report>(result, "worker_fault_child.ts");
  assert.equal(threads, 2, "the model ran on two threads");
  assert.deepEqual(report.map((r) => r.fault), faults);
  for (const { fault, settled, ms, later } of report) {
    console.log(`  ${fault}: ${JSON.stringify(settled)} in ${ms.toFixed(0)} ms`);
    if (fault === "throw-now" || fault === "idle") {
      // Between runs (a worker's error, or workers ended after IDLE_MS): the call runs on new workers.
      assert.deepEqual(settled, { ok: true, same: true }, fault);
    } else if (fault === "terminate" && settled.ok) {
      // A runtime may end a worker after its share of the run: then the run is whole.
      assert.ok(settled.same, `${fault}: a call that succeeds gives the baseline's bits`);
    } else {
      assertWorkerError(settled, `${fault}: the call in flight`);
    }
    // Later calls: at most one more rejection (a worker ended after its share
    // of a run is found by the next one), then the baseline's bits.
    const last = later.at(-1)!;
    assert.deepEqual(
      last,
      { ok: true, same: true },
      `${fault}: later calls give the baseline's bits`,
    );
    for (const s of later.slice(0, -1)) assertWorkerError(s, `${fault}: a later call`);
    assert.ok(later.length <= 2, `${fault}: at most one later call rejects`);
  }
  assert.equal(disposed, "settled");
  // The worker's own uncaught error is Deno's to print; nothing else may be.
  const other = result.stderr.split("\n").filter((l) =>
    l.trim() && !/Injected worker fault|^\s+at |^\s*\^|throw new Error|error: Uncaught \(in worker/
      .test(l)
  );
  assert.deepEqual(other, [], "stderr holds only the injected errors' reports");
});
