/**
 * The thread pool's work split (`src/backend/wasm/executor.ts`): every chunk
 * of every operation runs exactly once whichever thread claims it, chunk
 * bounds cover the work without overlap, and the shared counter stays in step
 * across operations however the claims interleave. Threads are simulated in
 * one isolate, each `WorkQueue` playing one thread over one shared counter.
 */

import assert from "node:assert/strict";
import { chunkCount, split, WorkQueue } from "../src/backend/wasm/executor.ts";

/** A counter block like the pool's: the counter at index 0. */
function counter(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4));
}

Deno.test("each chunk of each operation runs exactly once, in any order of threads", () => {
  const threads = 3;
  const counts = [5, 1, 8, 3, 12, 2];
  // Per operation, which thread asks first; the others follow in order.
  for (const first of [0, 1, 2]) {
    const control = counter();
    const queues = Array.from({ length: threads }, () => new WorkQueue(control, 0));
    for (const [op, count] of counts.entries()) {
      const ran = new Array<number>(count).fill(0);
      for (let k = 0; k < threads; k++) {
        const tid = (first + k + op) % threads;
        queues[tid].forEach(count, threads, (chunk) => ran[chunk]++);
      }
      assert.deepEqual(ran, new Array(count).fill(1), `operation ${op}, thread ${first} first`);
    }
  }
});

Deno.test("a thread that takes chunks while another is mid-operation never repeats or skips one", () => {
  // Thread 0 runs chunk 0, then, inside it, thread 1 claims everything left;
  // thread 0 then finds nothing more. The next operation starts cleanly.
  const control = counter();
  const [a, b] = [new WorkQueue(control, 0), new WorkQueue(control, 0)];
  const ran: string[] = [];
  a.forEach(4, 2, (chunk) => {
    ran.push(`a${chunk}`);
    if (chunk === 0) b.forEach(4, 2, (other) => ran.push(`b${other}`));
  });
  assert.deepEqual(ran, ["a0", "b1", "b2", "b3"]);
  const next: string[] = [];
  b.forEach(2, 2, (chunk) => next.push(`b${chunk}`));
  a.forEach(2, 2, (chunk) => next.push(`a${chunk}`));
  assert.deepEqual(next, ["b0", "b1"]);
});

Deno.test("one thread runs every chunk in order, without a counter", () => {
  const ran: number[] = [];
  new WorkQueue().forEach(5, 1, (chunk) => ran.push(chunk));
  assert.deepEqual(ran, [0, 1, 2, 3, 4]);
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
