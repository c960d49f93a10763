/**
 * The argument checkers of `src/validate.ts` and the bounded reader of
 * `src/read_bytes.ts`: exact messages (option, value, what is allowed), no
 * coercion, defaults, the error class override, and budgets checked before
 * reading (a file's size, a `Content-Length`).
 */

import assert from "node:assert/strict";
import { BackendError, ImageError, OptionError, WeightsFormatError } from "../src/errors.ts";
import { checkTimeout, readBytes } from "../src/read_bytes.ts";
import { runDeno } from "./_support/edge_child.ts";
import {
  checkBoolean,
  checkEnum,
  checkInstance,
  checkInteger,
  checkNumber,
  checkOptions,
  describeValue,
} from "../src/validate.ts";

function throwsExactly(fn: () => unknown, type: new (...args: never[]) => Error, message: string) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${e}`);
    assert.equal((e as Error).message, message);
    return true;
  });
}

Deno.test("describeValue names values without calling them", () => {
  assert.equal(describeValue(undefined), "undefined");
  assert.equal(describeValue(null), "null");
  assert.equal(describeValue(NaN), "NaN");
  assert.equal(describeValue(-0), "-0");
  assert.equal(describeValue(10n), "10n");
  assert.equal(describeValue("2"), '"2"');
  assert.equal(describeValue("x".repeat(100)), `"${"x".repeat(57)}..."`);
  assert.equal(describeValue(Symbol("s")), "a symbol");
  assert.equal(describeValue(() => 1), "a function");
  assert.equal(describeValue([1, 2]), "an array of 2 items");
  assert.equal(describeValue({}), "an object");
  assert.equal(describeValue(Object.create(null)), "an object");
  assert.equal(describeValue(new Uint8Array(2)), "a Uint8Array");
  assert.equal(describeValue(new ArrayBuffer(2)), "an ArrayBuffer");
  const hostile = new Proxy({}, {
    getPrototypeOf() {
      throw new Error("trap");
    },
  });
  assert.equal(describeValue(hostile), "an object");
});

Deno.test("checkOptions: undefined is {}, non-objects and unknown names are refused, the result is a copy", () => {
  assert.deepEqual(checkOptions("f", undefined, ["a"]), {});
  for (const [value, described] of [[null, "null"], [[], "an array of 0 items"], [3, "3"]]) {
    throwsExactly(
      () => checkOptions("f", value as never, ["a"]),
      OptionError,
      `Expected the options of f to be an object, got ${described}`,
    );
  }
  throwsExactly(
    () => checkOptions("preprocess", { size: 1, crop: 2, Resize: 3 } as never, ["resize", "crop"]),
    OptionError,
    'Unknown options "size", "Resize" of preprocess: expected one of "resize", "crop"',
  );
  const given = { a: 1 };
  const copy = checkOptions("f", given, ["a"]);
  given.a = 2;
  assert.equal(copy.a, 1);
  throwsExactly(
    () => checkOptions("create", { x: 1 } as never, ["a"], { error: BackendError }),
    BackendError,
    'Unknown option "x" of create: expected one of "a"',
  );
});

Deno.test("checkInteger and checkNumber: no coercion, ranges in the message, defaults only for undefined", () => {
  assert.equal(checkInteger("n", undefined, { default: 4 }), 4);
  assert.equal(checkInteger("n", 0, { min: 0 }), 0);
  for (
    const [value, described] of [["2", '"2"'], [1.5, "1.5"], [NaN, "NaN"], [2n, "2n"], [
      null,
      "null",
    ]]
  ) {
    throwsExactly(
      () => checkInteger("threads", value, { min: 1, max: 256, default: 2 }),
      OptionError,
      `Expected threads to be an integer from 1 to 256, got ${described}`,
    );
  }
  throwsExactly(
    () => checkInteger("k", 0, { min: 1 }),
    OptionError,
    "Expected k to be an integer >= 1, got 0",
  );
  throwsExactly(
    () => checkInteger("k", 9, { max: 8 }),
    OptionError,
    "Expected k to be an integer <= 8, got 9",
  );
  throwsExactly(
    () => checkInteger("k", undefined),
    OptionError,
    "Expected k to be an integer, got undefined",
  );
  assert.equal(checkNumber("t", 0.5, { min: 0, exclusiveMin: true }), 0.5);
  throwsExactly(
    () => checkNumber("timeout", 0, { min: 0, exclusiveMin: true }),
    OptionError,
    "Expected timeout to be a finite number > 0, got 0",
  );
  throwsExactly(
    () => checkNumber("mean[1]", Infinity),
    OptionError,
    "Expected mean[1] to be a finite number, got Infinity",
  );
  throwsExactly(
    () => checkNumber("x", { valueOf: () => 3 }),
    OptionError,
    "Expected x to be a finite number, got an object",
  );
});

Deno.test("checkEnum, checkBoolean, checkInstance", () => {
  assert.equal(checkEnum("v", undefined, ["a", "b"], { default: "a" }), "a");
  throwsExactly(
    () => checkEnum("variant", "resnet50", ["seed", "torchvision"]),
    OptionError,
    'Expected variant to be "seed" or "torchvision", got "resnet50"',
  );
  throwsExactly(
    () => checkEnum("backend", 1, ["auto", "wasm", "webgpu"]),
    OptionError,
    'Expected backend to be one of "auto", "wasm" or "webgpu", got 1',
  );
  assert.equal(checkBoolean("b", false, { default: true }), false);
  throwsExactly(
    () => checkBoolean("auxLogits", "false"),
    OptionError,
    'Expected auxLogits to be true or false, got "false"',
  );
  const signal = new AbortController().signal;
  assert.equal(checkInstance("signal", signal, [AbortSignal]), signal);
  assert.equal(
    checkInstance("signal", undefined, [AbortSignal], { default: undefined }),
    undefined,
  );
  throwsExactly(
    () => checkInstance<Uint8Array | ArrayBuffer>("bytes", [1], [Uint8Array, ArrayBuffer]),
    OptionError,
    "Expected bytes to be one of Uint8Array, ArrayBuffer, got an array of 1 items",
  );
});

const budget = (maxBytes: number) => ({
  maxBytes,
  timeout: 5000,
  error: WeightsFormatError,
  what: "weight file",
});

Deno.test("readBytes: a regular file larger than maxBytes is refused from its size, before reading", async () => {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeFile(path, new Uint8Array(1000).fill(7));
    assert.deepEqual(await readBytes(path, budget(1000)), new Uint8Array(1000).fill(7));
    await assert.rejects(
      () => readBytes(path, budget(999)),
      (e: unknown) =>
        e instanceof WeightsFormatError &&
        e.message === "Weight file of 1000 bytes or more exceeds maxBytes (999)",
    );
    await assert.rejects(
      () => readBytes(`${path}.missing`, { ...budget(10), error: ImageError, what: "image" }),
      (e: unknown) =>
        e instanceof ImageError && /Cannot read the image ".*\.missing": /.test(e.message) &&
        e.cause instanceof Deno.errors.NotFound,
    );
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("readBytes: a regular file comes back whole, whatever its size said", async () => {
  const path = await Deno.makeTempFile();
  try {
    // Several reads' worth of bytes, read straight into one buffer of the file's size.
    const bytes = Uint8Array.from({ length: 3 << 20 }, (_, i) => (i * 2654435761) >>> 24);
    await Deno.writeFile(path, bytes);
    const read = await readBytes(path, budget(3 << 20));
    assert.equal(read.length, bytes.length);
    assert.ok(read.every((b, i) => b === bytes[i]), "the same bytes");
  } finally {
    await Deno.remove(path);
  }
  // A sysfs file states 4096 bytes and holds fewer: the read ends at its end.
  const sys = "/sys/kernel/mm/transparent_hugepage/enabled";
  let expected: Uint8Array;
  try {
    expected = await Deno.readFile(sys);
  } catch {
    console.log(`SKIPPED the short file: no ${sys} here`);
    return;
  }
  assert.ok((await Deno.stat(sys)).size > expected.length, "its stated size is larger");
  assert.deepEqual(await readBytes(sys, budget(1 << 20)), expected);
});

Deno.test("readBytes: a Content-Length over maxBytes is refused before the body is read", async () => {
  let pulled = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled++;
      controller.enqueue(new Uint8Array(100));
    },
  });
  const response = new Response(body, { headers: { "content-length": "5000" } });
  await assert.rejects(
    () => readBytes(response, budget(4999)),
    /Weight file of 5000 bytes or more exceeds maxBytes \(4999\)/,
  );
  assert.ok(pulled <= 1, `the body was read (${pulled} pulls)`);
  const chunks = new ReadableStream({
    start(controller) {
      controller.enqueue("not bytes");
      controller.close();
    },
  });
  await assert.rejects(
    () => readBytes(chunks as never, budget(100)),
    /Expected the weight file stream to yield Uint8Array chunks, got string/,
  );
  const aborted = AbortSignal.abort(new Error("no"));
  await assert.rejects(
    () => readBytes(new Response("abc"), { ...budget(10), signal: aborted }),
    (e: unknown) =>
      e instanceof WeightsFormatError && e.message === "Aborted reading the weight file: no",
  );
});

Deno.test("readBytes: a FIFO without a writer is refused at once, and the process can then exit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "read_bytes_fifo_" });
  try {
    const made = await new Deno.Command("mkfifo", { args: [`${dir}/f.pth`], stderr: "piped" })
      .output().then(
        (o) => o.success || `mkfifo failed: ${new TextDecoder().decode(o.stderr).trim()}`,
        (e) => `mkfifo cannot run: ${e.message}`,
      );
    if (made !== true) {
      console.log(`SKIPPED the FIFO case: ${made}`);
      return;
    }
    // As a script using the library would: the call fails, the script ends without Deno.exit.
    const module = new URL("../src/read_bytes.ts", import.meta.url).href;
    const errors = new URL("../src/errors.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/child.ts`,
      `import { readBytes } from ${JSON.stringify(module)};
import { WeightsFormatError } from ${JSON.stringify(errors)};
const options = { maxBytes: 100, timeout: 500, error: WeightsFormatError, what: "weight file" };
await readBytes(${JSON.stringify(`${dir}/f.pth`)}, options).then(
  () => console.log("read"),
  (e) => console.log(\`\${e.name}: \${e.message}\`),
);
`,
    );
    // The deadline guards against the hang this checks for; it is not a time limit on the read.
    const out = await runDeno([
      "run",
      "--no-config",
      `--allow-read=${dir},${new URL("..", import.meta.url).pathname}`,
      `${dir}/child.ts`,
    ], { timeoutMs: 60_000 });
    const stdout = out.stdout;
    assert.ok(
      !out.timedOut,
      `the child did not exit by itself (killed after 60 s); it printed: ${stdout}`,
    );
    assert.equal(out.code, 0, out.stderr);
    assert.equal(
      stdout.trim(),
      `WeightsFormatError: Expected the weight file "${dir}/f.pth" to be a regular file or a ` +
        "device, got a FIFO: opening or reading it waits for a writer, a wait that outlasts the " +
        "timeout and keeps the process alive; read it yourself and pass the bytes as a " +
        "ReadableStream or a Response",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkTimeout: milliseconds above 0 up to 2^31 - 1 (past it timers fire at once), or Infinity", () => {
  assert.equal(checkTimeout(undefined, 5), 5);
  assert.equal(checkTimeout(0.5, 5), 0.5);
  assert.equal(checkTimeout(2 ** 31 - 1, 5), 2 ** 31 - 1);
  assert.equal(checkTimeout(Infinity, 5), Infinity);
  for (
    const [value, described] of [[0, "0"], [2 ** 31, "2147483648"], [NaN, "NaN"], ["1", '"1"']]
  ) {
    throwsExactly(
      () => checkTimeout(value, 5),
      OptionError,
      "Expected timeout to be milliseconds above 0 and at most 2147483647, or Infinity for none, " +
        `got ${described}`,
    );
  }
});

Deno.test("checkOptions: options whose getters throw are an OptionError, read once", () => {
  let reads = 0;
  const options = {
    get resize() {
      reads++;
      return 256;
    },
  };
  assert.equal(checkOptions("preprocess", options, ["resize"]).resize, 256);
  assert.equal(reads, 1);
  const hostile = {
    get resize(): number {
      throw new TypeError("no");
    },
  };
  throwsExactly(
    () => checkOptions("preprocess", hostile, ["resize"]),
    OptionError,
    "Cannot read the options of preprocess: no",
  );
});
