/**
 * `deno task classify`: weights from a file (format and variant detected),
 * batches, JSON output equal to the library's classifyBatch, the plain
 * warning without weights, and clear errors for bad arguments.
 */

import assert from "node:assert/strict";
import { classifyBatch, GoogLeNet, writePth } from "../mod.ts";
import { deterministicStateDict } from "../tools/deterministic.ts";

const ROOT = new URL("../", import.meta.url);
const photo = new URL("assets/chelsea.jpg", ROOT).pathname;
const keys: [string, number[]][] = JSON.parse(
  await Deno.readTextFile(new URL("tests/fixtures/torchvision_state_dict.json", ROOT)),
).aux;

async function classifyCommand(...args: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-net", "tools/classify.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code,
    stdout: new TextDecoder().decode(stdout),
    stderr: new TextDecoder().decode(stderr),
  };
}

Deno.test("classify --weights FILE.pth --json batches images and prints what classifyBatch returns", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const stateDict = deterministicStateDict(keys);
    await Deno.writeFile(`${dir}/tv.pth`, writePth(stateDict));
    const images = [photo, photo, photo];
    const run = await classifyCommand(
      "--weights",
      `${dir}/tv.pth`,
      "--json",
      "--top",
      "3",
      "--batch",
      "2",
      ...images,
    );
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout);
    assert.equal(report.variant, "torchvision", "BatchNorm keys mean torchvision's definition");
    const model = await GoogLeNet.create({
      variant: "torchvision",
      auxLogits: false,
      threads: 1,
      stateDict,
    });
    const expected = await classifyBatch(model, images, { top: 3 });
    await model.dispose();
    assert.deepEqual(report.results.map((r: { predictions: unknown }) => r.predictions), expected);
    assert.match(run.stderr, /3\/3 images/, "a progress line for runs longer than one batch");
    assert.doesNotMatch(run.stderr, /meaningless/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("classify without --weights prints a table and says the predictions mean nothing", async () => {
  const run = await classifyCommand("--top", "2", photo);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /random initial weights and these predictions\nare meaningless/);
  assert.match(run.stderr, /googlenet-1378be20\.pth/);
  assert.match(run.stdout, /chelsea\.jpg\n {2}1\. .*%/);
  assert.match(run.stdout, /1 image\(s\), [\d.]+ ms per image/);
});

Deno.test("classify rejects bad arguments and unreadable files with a one-line error", async () => {
  for (
    const [args, message] of [
      [["--top", "0", photo], /--top must be a positive integer, got "0"/],
      [["--variant", "resnet", photo], /--variant must be "seed" or "torchvision"/],
      [
        ["--weights", photo, photo],
        /Error: Unrecognised weight file: expected a PyTorch checkpoint/,
      ],
    ] as const
  ) {
    const run = await classifyCommand(...args);
    assert.equal(run.code, 1, `${args.join(" ")}: ${run.stdout}`);
    assert.match(run.stderr, message);
  }
  const usage = await classifyCommand();
  assert.equal(usage.code, 2);
  assert.match(usage.stdout, /Usage: deno task classify/);
});
