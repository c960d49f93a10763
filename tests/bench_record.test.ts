/**
 * bench/_record.ts: a bench file writes its own section of the record and
 * keeps the others; the record names the host, the commit and the load
 * average; peer versions come from the bench's import map.
 */

import assert from "node:assert/strict";
import { commit, hostLine, npmVersions, startRun, writeSection } from "../bench/_record.ts";

Deno.test("writeSection writes one section and keeps the others", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/sub/latest.json`;
  try {
    const run = await startRun();
    assert.equal(writeSection("training", run, { rows: [1, 2] }, path), path);
    const second = await startRun();
    writeSection("inference", second, { rows: [3] }, path);
    const record = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual(Object.keys(record).sort(), ["inference", "training"]);
    assert.deepEqual(record.training.rows, [1, 2]);
    assert.deepEqual(record.inference.rows, [3]);
    assert.equal(record.training.host.cores, navigator.hardwareConcurrency);
    assert.equal(record.training.loadAverage.start.length, 3);
    assert.equal(record.training.loadAverage.end.length, 3);
    assert.ok(!Number.isNaN(Date.parse(record.training.date)));
    // A later run of one file replaces its section only.
    writeSection("training", await startRun(), { rows: [9] }, path);
    const again = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual(again.training.rows, [9]);
    assert.deepEqual(again.inference.rows, [3]);

    // An empty path (BENCH_RECORD=) writes nothing.
    assert.equal(writeSection("training", await startRun(), { rows: [] }, ""), null);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)).training.rows, [9]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("The record names the commit and the host", async () => {
  const head = await commit();
  assert.match(head, /^([0-9a-f]{7,}(\+dirty)?|unknown)$/);
  const run = await startRun();
  const line = hostLine(run);
  assert.ok(line.includes(run.host.cpu) && line.includes(`${run.host.cores} cores`), line);
  assert.ok(line.includes(`commit ${run.commit}`), line);
});

Deno.test("npmVersions reads the pinned versions of a JSONC import map", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = new URL(`file://${dir}/deno.dev.jsonc`);
    await Deno.writeTextFile(
      config,
      [
        "// comment line",
        "{",
        '  "imports": {',
        '    "assemblyscript/asc": "npm:assemblyscript@0.28.20/asc",',
        "    // another comment",
        '    "@tensorflow/tfjs-core": "npm:@tensorflow/tfjs-core@4.22.0",',
        '    "onnxruntime-web": "npm:onnxruntime-web@1.30.0"',
        "  }",
        "}",
      ].join("\n"),
    );
    assert.deepEqual(
      npmVersions(["onnxruntime-web", "@tensorflow/tfjs-core", "assemblyscript/asc", "x"], config),
      {
        "onnxruntime-web": "1.30.0",
        "@tensorflow/tfjs-core": "4.22.0",
        "assemblyscript/asc": "0.28.20",
        x: "?",
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
