/**
 * `deno task train` on bad input, run as a user runs it (a child process),
 * on tiny image folders built from tests/fixtures/images (JPEG, grey PNG,
 * RGBA PNG, palette PNG, mixed sizes), at 64x64 without aux heads, one step:
 * - a corrupt image is skipped and counted (named on stderr, `skipped` in the
 *   JSON record), a non-image file is ignored, an empty class folder is kept
 *   as a class with a warning; the checkpoint, its optimizer sidecar and
 *   classes.json are written, PyTorch-free `deno task classify` then prints
 *   the folder's class names, and `deno task evaluate` prints the matrix;
 * - a single class, class folders differing only in case, an `--out` in a
 *   folder that does not exist: clear errors before any training;
 * - a `classes.json` of other classes beside another run's checkpoint: an
 *   error before training, the file kept (it names their classes);
 * - a checkpoint of another class count: an error that names both counts,
 *   and with `--trainable fc.` a re-initialised head that trains;
 * - a checkpoint of the other variant: an error that names both;
 * - disk full while saving (a 40 MB tmpfs, root only): exit 1, the previous
 *   checkpoint byte-identical, no temporary file left behind;
 * - SIGINT during training: exit 130 with the last checkpoint saved at the
 *   step reached, and `--resume` from it takes the next step number;
 * - `--steps` ending inside an epoch, then `--resume`: the two runs take the
 *   steps (losses, final weights bit for bit) of one uninterrupted run, and
 *   count the epoch once; a resume with another `--batch`, or a sidecar whose
 *   batches done do not fit the data set, or whose batch, seed, image count or
 *   optimizer is not of the kind the command writes, or whose unfinished
 *   epoch's loss, image or correct count does not fit its batches done, is an
 *   error; a step or epoch count the run would carry past 2^53 - 1 (epochs:
 *   past the loader's 2^32) is refused before any step; the resumed epoch's
 *   record (loss and accuracy over the whole epoch) is the uninterrupted
 *   run's; a sidecar without the fields (older) starts the epoch at its
 *   first batch.
 */

import assert from "node:assert/strict";
import { loadWeights, readSafetensors, writeSafetensors } from "../mod.ts";
import { readSidecar } from "../src/train/checkpoint.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const IMAGES = `${ROOT}tests/fixtures/images`;
const FAST = ["--size", "64", "--no-aux", "--batch", "4", "--threads", "1", "--workers", "0"];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function task(name: string, args: string[]): Promise<Run> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", name, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/** Builds root/<class>/<file> from `files`: fixture names are copied, `bytes` written. */
async function folder(spec: Record<string, Record<string, string | Uint8Array>>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "train_cmd_" });
  for (const [cls, files] of Object.entries(spec)) {
    await Deno.mkdir(`${root}/data/${cls}`, { recursive: true });
    for (const [name, source] of Object.entries(files)) {
      const path = `${root}/data/${cls}/${name}`;
      if (typeof source === "string") await Deno.copyFile(`${IMAGES}/${source}`, path);
      else await Deno.writeFile(path, source);
    }
  }
  return root;
}

const MIXED = {
  cat: {
    "a.jpg": "chelsea_exif6.jpg",
    "b.png": "chelsea_rgba.png",
    "c.png": "chelsea_palette.png",
    "d.png": "coffee_rgb.png",
    "broken.jpg": new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5]),
    "notes.txt": new TextEncoder().encode("not an image"),
  },
  empty: {},
  grey: {
    "a.png": "camera_grey.png",
    "b.jpg": "camera_grey_q90.jpg",
    "c.png": "astronaut_16bit.png",
    "d.jpg": "rocket_progressive.jpg",
  },
};

Deno.test("train: mixed images, a corrupt one skipped, an empty class kept, then classify and evaluate", async () => {
  const root = await folder(MIXED);
  try {
    const run = await task("train", [
      `${root}/data`,
      ...FAST,
      "--steps",
      "2",
      "--val-split",
      "0.25",
      "--out",
      `${root}/best.pth`,
      "--json",
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /class folder\(s\) without images \(kept as classes\): empty/);
    assert.match(run.stderr, /Skipped .*broken\.jpg: /);
    assert.doesNotMatch(run.stderr, /notes\.txt/);
    const records = run.stdout.trim().split("\n").map((line) => JSON.parse(line));
    const epoch = records.find((r) => r.type === "epoch");
    assert.equal(epoch.skipped, 1, run.stderr);
    assert.equal(epoch.step, 2);
    assert.ok(Number.isFinite(epoch.trainLoss) && Number.isFinite(epoch.valLoss));
    assert.equal(records.filter((r) => r.type === "step").length, 2);
    const classes = JSON.parse(await Deno.readTextFile(`${root}/classes.json`));
    assert.deepEqual(classes.classes, ["cat", "empty", "grey"]);
    assert.equal(classes.size, 64);
    const weights = await loadWeights(`${root}/best.pth`);
    assert.deepEqual(weights.get("fc.weight")?.shape, [3, 1024]);
    for (
      const f of ["best.pth.optim.safetensors", "best.last.pth", "best.last.pth.optim.safetensors"]
    ) {
      assert.ok((await Deno.stat(`${root}/${f}`)).size > 0, f);
    }
    assert.deepEqual(
      [...Deno.readDirSync(root)].filter((e) => e.name.includes(".tmp-")),
      [],
      "no temporary file left",
    );

    const classify = await task("classify", [
      "--weights",
      `${root}/best.pth`,
      `${IMAGES}/coffee_rgb.png`,
    ]);
    assert.equal(classify.code, 0, classify.stderr);
    const names = [...classify.stdout.matchAll(/%\s+(\S+) \((\d)\)/g)].map((m) => m[1]).sort();
    assert.deepEqual(names, ["cat", "empty", "grey"]);

    const evaluate = await task("evaluate", [
      `${root}/data`,
      "--weights",
      `${root}/best.pth`,
      "--json",
    ]);
    assert.equal(evaluate.code, 0, evaluate.stderr);
    const result = JSON.parse(evaluate.stdout);
    assert.equal(result.count, 8); // 9 images, the corrupt one skipped
    assert.equal(result.skipped, 1);
    assert.equal(result.confusion.flat().reduce((a: number, b: number) => a + b, 0), 8);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("train: a single class, class names differing only in case, an out folder that does not exist", async () => {
  const one = await folder({ cat: { "a.jpg": "chelsea_exif6.jpg", "b.png": "coffee_rgb.png" } });
  const cased = await folder({
    cat: { "a.jpg": "chelsea_exif6.jpg" },
    Cat: { "b.png": "coffee_rgb.png" },
  });
  try {
    const single = await task("train", [
      `${one}/data`,
      ...FAST,
      "--steps",
      "1",
      "--out",
      `${one}/b.pth`,
    ]);
    assert.equal(single.code, 2);
    assert.match(single.stderr, /has 1 class \(cat\): a classifier needs at least 2 class folders/);
    const clash = await task("train", [
      `${cased}/data`,
      ...FAST,
      "--steps",
      "1",
      "--out",
      `${cased}/b.pth`,
    ]);
    assert.equal(clash.code, 1);
    assert.match(clash.stderr, /differ only in case: Cat and cat/);
    const nowhere = await task("train", [
      `${cased}/data`,
      ...FAST,
      "--steps",
      "1",
      "--out",
      `${cased}/missing/folder/b.pth`,
    ]);
    assert.equal(nowhere.code, 2);
    assert.match(
      nowhere.stderr,
      /Cannot write next to --out .*missing\/folder\/b\.pth: .*expected an existing folder/,
    );
    for (const dir of [one, cased]) {
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["data"], "nothing written");
    }
  } finally {
    await Deno.remove(one, { recursive: true });
    await Deno.remove(cased, { recursive: true });
  }
});

Deno.test("train and evaluate: a seed past 32 bits, --val-split 1 and --size past 1024 name the flag and its range", async () => {
  const root = await folder(MIXED);
  try {
    // --seed 4294967296 was seeded as 0 (evaluate's choice of images; train's split and
    // shuffles), --val-split 1 failed as "valFraction", and --size 1025 claimed "[16, 1024)".
    const cases: [string, string[], string][] = [
      [
        "train",
        ["--seed", "4294967296"],
        '--seed must be an integer from 0 to 4294967295, got "4294967296"',
      ],
      [
        "train",
        ["--val-split", "1"],
        '--val-split must be a number from 0 up to (not including) 1, got "1"',
      ],
      ["train", ["--size", "1025"], '--size must be an integer from 16 to 1024, got "1025"'],
      [
        "evaluate",
        ["--weights", `${root}/none.pth`, "--seed", "4294967296"],
        '--seed must be an integer from 0 to 4294967295, got "4294967296"',
      ],
    ];
    for (const [command, flags, message] of cases) {
      const args = command === "train" ? [...FAST, "--steps", "1", "--out", `${root}/b.pth`] : [];
      const run = await task(command, [`${root}/data`, ...args, ...flags]);
      assert.equal(run.code, 2, `${command} ${flags.join(" ")}: ${run.stderr}`);
      assert.equal(run.stderr.trim().split("\n")[0], `Error: ${message}`);
    }
    assert.deepEqual([...Deno.readDirSync(root)].map((e) => e.name), ["data"], "nothing written");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("train: a classes.json of other classes beside other checkpoints is not replaced", async () => {
  const root = await folder({
    cat: { "a.jpg": "chelsea_exif6.jpg" },
    dog: { "b.png": "coffee_rgb.png" },
  });
  try {
    const saved = JSON.stringify({ classes: ["bird", "fish"] }) + "\n";
    await Deno.writeTextFile(`${root}/classes.json`, saved);
    await Deno.writeFile(`${root}/old.pth`, new Uint8Array([1, 2, 3]));
    const run = await task("train", [
      `${root}/data`,
      ...FAST,
      "--steps",
      "1",
      "--out",
      `${root}/b.pth`,
    ]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(
      run.stderr,
      /classes\.json lists other classes \(bird, fish\) for the checkpoints beside it \(old\.pth\): this run's classes \(cat, dog\) would replace it and mislabel them; expected --out in another folder/,
    );
    assert.equal(await Deno.readTextFile(`${root}/classes.json`), saved, "classes.json kept");
    assert.deepEqual(
      [...Deno.readDirSync(root)].map((e) => e.name).sort(),
      ["classes.json", "data", "old.pth"],
      "nothing written",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("train: checkpoints of another class count or the other variant", async () => {
  const three = await folder({
    a: { "1.png": "coffee_rgb.png" },
    b: { "1.png": "camera_grey.png" },
    c: { "1.jpg": "chelsea_exif6.jpg" },
  });
  const two = await folder({ a: { "1.png": "coffee_rgb.png" }, b: { "1.png": "camera_grey.png" } });
  try {
    const first = await task("train", [
      `${three}/data`,
      ...FAST,
      "--steps",
      "1",
      "--val-split",
      "0",
      "--out",
      `${three}/c.pth`,
    ]);
    assert.equal(first.code, 0, first.stderr);
    const args = [
      `${two}/data`,
      ...FAST,
      "--steps",
      "1",
      "--val-split",
      "0",
      "--out",
      `${two}/d.pth`,
    ];
    const count = await task("train", [...args, "--weights", `${three}/c.pth`]);
    assert.equal(count.code, 1);
    assert.match(count.stderr, /was trained for 3 classes, expected 2 .*--trainable fc\./);
    const variant = await task("train", [
      ...args,
      "--weights",
      `${three}/c.pth`,
      "--variant",
      "torchvision",
    ]);
    assert.equal(variant.code, 1);
    assert.match(
      variant.stderr,
      /holds the seed variant .* expected the torchvision variant: pass --variant seed/,
    );
    assert.equal((await Array.fromAsync(Deno.readDir(two))).length, 1, "nothing written");

    const head = await task("train", [
      ...args,
      "--weights",
      `${three}/c.pth`,
      "--trainable",
      "fc.",
    ]);
    assert.equal(head.code, 0, head.stderr);
    assert.match(head.stderr, /the head \(fc\) is re-initialised for 2/);
    const before = await loadWeights(`${three}/c.pth`);
    const after = await loadWeights(`${two}/d.pth`);
    assert.deepEqual(after.get("fc.weight")?.shape, [2, 1024]);
    // Frozen layers are the checkpoint's, bit for bit.
    assert.deepEqual(
      after.get("inception5b.branch1.conv.weight")?.data,
      before.get("inception5b.branch1.conv.weight")?.data,
    );
  } finally {
    await Deno.remove(three, { recursive: true });
    await Deno.remove(two, { recursive: true });
  }
});

const ROOT_USER = Deno.uid() === 0;

Deno.test({
  name: `train: disk full while saving keeps the previous checkpoint intact${
    ROOT_USER ? "" : " (skipped: mounting its 40 MB tmpfs needs root)"
  }`,
  ignore: !ROOT_USER,
  fn: async () => {
    const root = await folder({
      a: { "1.png": "coffee_rgb.png" },
      b: { "1.png": "camera_grey.png" },
    });
    const disk = `${root}/disk`;
    await Deno.mkdir(disk);
    const mount = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=40m", "tmpfs", disk],
      stderr: "piped",
    }).output();
    if (!mount.success) {
      console.log(
        `Skipping the disk-full case: cannot mount a tmpfs (${
          new TextDecoder().decode(mount.stderr).trim()
        })`,
      );
      await Deno.remove(root, { recursive: true });
      return;
    }
    try {
      const args = [
        `${root}/data`,
        ...FAST,
        "--steps",
        "1",
        "--val-split",
        "0",
        "--optimizer",
        "sgd",
      ];
      // A first checkpoint (24 MB of weights, 24 MB of SGD momentum) where there is room.
      const first = await task("train", [...args, "--out", `${root}/best.pth`]);
      assert.equal(first.code, 0, first.stderr);
      await Deno.copyFile(`${root}/best.pth`, `${disk}/best.pth`);
      const previous = await Deno.readFile(`${disk}/best.pth`);
      // 24 of 40 MB used: the new weights and momentum (48 MB) do not fit.
      const full = await task("train", [...args, "--out", `${disk}/best.pth`, "--seed", "3"]);
      assert.equal(full.code, 1);
      assert.match(
        full.stderr,
        /Cannot save the checkpoint .*best\.pth: .*; the checkpoint there before \(if any\) is intact/,
      );
      assert.deepEqual(await Deno.readFile(`${disk}/best.pth`), previous);
      assert.deepEqual([...Deno.readDirSync(disk)].map((e) => e.name), ["best.pth"]);
    } finally {
      await new Deno.Command("umount", { args: [disk] }).output();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("train: Ctrl-C (SIGINT) saves the last checkpoint, and --resume continues from it", async () => {
  const root = await folder({
    a: { "1.png": "coffee_rgb.png" },
    b: { "1.png": "camera_grey.png" },
  });
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "tools/train.ts",
        `${root}/data`,
        ...FAST,
        "--epochs",
        "1000",
        "--val-split",
        "0",
        "--out",
        `${root}/best.pth`,
        "--json",
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    let text = "";
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    // Interrupt once the first step is done (training would otherwise run for 1000 epochs).
    while (!text.includes('"type":"step"')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    child.kill("SIGINT");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const status = await child.status;
    assert.equal(status.code, 130, await stderr);
    assert.match(await stderr, /Saved .*best\.last\.pth \(step \d+\); continue with --resume/);
    const lines = text.trim().split("\n").map((line) => JSON.parse(line));
    const stop = lines.find((r) => r.type === "interrupted");
    assert.equal(stop.saved, `${root}/best.last.pth`);
    const { progress } = await readSidecar(`${root}/best.last.pth`);
    assert.equal(progress?.step, stop.step);
    const resumed = await task("train", [
      `${root}/data`,
      ...FAST,
      "--steps",
      "1",
      "--val-split",
      "0",
      "--out",
      `${root}/best.pth`,
      "--resume",
      `${root}/best.last.pth`,
      "--json",
    ]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const step = resumed.stdout.trim().split("\n").map((l) => JSON.parse(l)).find((r) =>
      r.type === "step"
    );
    assert.equal(step.step, stop.step + 1);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("train: --steps ending inside an epoch, then --resume, takes the steps of an uninterrupted run", async () => {
  // 6 images in batches of 2: 3 batches per epoch; torchvision augmentation and dropout on.
  const root = await folder({
    a: { "1.png": "coffee_rgb.png", "2.jpg": "chelsea_exif6.jpg", "3.png": "chelsea_rgba.png" },
    b: {
      "1.png": "camera_grey.png",
      "2.jpg": "camera_grey_q90.jpg",
      "3.jpg": "rocket_progressive.jpg",
    },
  });
  const options = (batch: number) => [
    `${root}/data`,
    ...["--size", "64", "--no-aux", "--batch", String(batch), "--threads", "1", "--workers", "0"],
    ...["--val-split", "0", "--json"],
  ];
  const args = options(2);
  const records = (run: Run) => {
    assert.equal(run.code, 0, run.stderr);
    return run.stdout.trim().split("\n").map((line) => JSON.parse(line));
  };
  const steps = (run: Run) =>
    records(run).filter((r) => r.type === "step").map((r) => [r.epoch, r.step, r.loss]);
  const epochs = (run: Run) =>
    records(run).filter((r) => r.type === "epoch").map((r) => [r.epoch, r.batches, r.complete]);
  try {
    for (const dir of ["whole", "split", "err"]) await Deno.mkdir(`${root}/${dir}`);
    const whole = await task("train", [...args, "--epochs", "2", "--out", `${root}/whole/b.pth`]);
    // 4 steps: epoch 1, and the first batch of epoch 2.
    const first = await task("train", [...args, "--steps", "4", "--out", `${root}/split/b.pth`]);
    assert.deepEqual(epochs(first), [[1, 3, true], [2, 1, false]]);
    const saved = (await readSidecar(`${root}/split/b.last.pth`)).progress;
    assert.deepEqual([saved?.epoch, saved?.step, saved?.epochBatches], [1, 4, 1]);

    // What cannot continue that epoch is refused before any step.
    const resume = ["--resume", `${root}/err/c.pth`, "--out", `${root}/err/b.pth`];
    const sidecar = await Deno.readFile(`${root}/split/b.last.pth.optim.safetensors`);
    const withProgress = async (change: (p: Record<string, unknown>) => void) => {
      const { tensors, metadata } = readSafetensors(sidecar);
      const progress = JSON.parse(metadata.progress);
      change(progress);
      await Deno.copyFile(`${root}/split/b.last.pth`, `${root}/err/c.pth`);
      await Deno.writeFile(
        `${root}/err/c.pth.optim.safetensors`,
        writeSafetensors(tensors, {
          metadata: { ...metadata, progress: JSON.stringify(progress) },
        }),
      );
    };
    await withProgress(() => {});
    const batch = await task("train", [...options(3), ...resume]);
    assert.equal(batch.code, 2, batch.stderr);
    assert.match(
      batch.stderr,
      /c\.pth stopped after 1 batches of epoch 2 with --batch 2, not 3: pass --batch 2 to finish that epoch/,
    );
    await withProgress((p) => p.epochBatches = 3);
    const beyond = await task("train", [...args, ...resume]);
    assert.equal(beyond.code, 1, beyond.stderr);
    assert.match(
      beyond.stderr,
      /Cannot resume from .*c\.pth: it stopped after 3 batches of epoch 2 of 6 training images, but this training set has 6 images, 3 batches of 2: expected batches done from 0 to 2/,
    );
    await withProgress((p) => p.epochBatches = -1);
    const negative = await task("train", [...args, ...resume]);
    assert.equal(negative.code, 1, negative.stderr);
    assert.match(
      negative.stderr,
      /Cannot resume from .*c\.pth: .*c\.pth\.optim\.safetensors records epochBatches -1, expected an integer >= 0/,
    );
    // Fields the command wrote, altered: a CheckpointError naming the field, not advice to pass
    // a flag that cannot match ("with --batch 2, not 2: pass --batch 2") or an optimizer that
    // does not exist.
    const hostile: [string, unknown, string][] = [
      ["batch", "2", 'batch "2", expected an integer >= 1 (--batch)'],
      ["seed", 0.5, "seed 0.5, expected an integer >= 0 (--seed)"],
      ["trainImages", "6", 'trainImages "6", expected an integer >= 0 (training images)'],
      ["optimizer", "rmsprop", 'optimizer "rmsprop", expected adamw, adam or sgd'],
      // The unfinished epoch's loss and accuracy so far, which the epoch's record continues.
      ["epochLoss", -1, "epochLoss -1, expected a finite number >= 0 (the loss summed"],
      ["epochLoss", "1", 'epochLoss "1", expected a finite number >= 0 (the loss summed'],
      ["epochImages", 1.5, "epochImages 1.5, expected an integer from 1 to 2 (images trained"],
      ["epochImages", 3, "epochImages 3, expected an integer from 1 to 2 (images trained"],
      ["epochCorrect", 3, "epochCorrect 3, expected an integer from 0 to 2 (images of the"],
    ];
    for (const [field, value, message] of hostile) {
      await withProgress((p) => p[field] = value);
      const run = await task("train", [...args, ...resume]);
      assert.equal(run.code, 1, `${field}: ${run.stderr}`);
      assert.ok(
        run.stderr.includes(`c.pth.optim.safetensors records ${message}`),
        `${field}: ${run.stderr}`,
      );
      assert.match(run.stderr, /^Error: Cannot resume from /m, field);
    }
    // Counts that a run would carry past 2^53 - 1 (the next step or epoch no longer a safe
    // integer) would write a sidecar that cannot be resumed: refused before any step.
    for (const field of ["step", "epoch"]) {
      await withProgress((p) => p[field] = Number.MAX_SAFE_INTEGER);
      const run = await task("train", [...args, ...resume]);
      assert.equal(run.code, 1, `${field}: ${run.stderr}`);
      assert.ok(
        run.stderr.includes(`c.pth.optim.safetensors records ${field} 9007199254740991, and `),
        `${field}: ${run.stderr}`,
      );
      assert.doesNotMatch(run.stdout, /"type":"step"/, field);
    }
    // A sidecar from before the fields: the unfinished epoch starts at its first batch.
    await withProgress((p) => {
      for (const field of ["epochBatches", "epochLoss", "epochImages", "epochCorrect"]) {
        delete p[field];
      }
    });
    const older = await task("train", [...args, ...resume, "--steps", "1"]);
    assert.deepEqual(epochs(older), [[2, 1, false]]);

    const rest = await task("train", [
      ...args,
      ...["--steps", "2", "--out", `${root}/split/b.pth`, "--resume", `${root}/split/b.last.pth`],
    ]);
    assert.match(rest.stderr, /4 steps, 1 epochs done, 1 of the 3 batches of epoch 2 done/);
    assert.deepEqual(epochs(rest), [[2, 3, true]]);
    assert.deepEqual(epochs(whole), [[1, 3, true], [2, 3, true]]);
    // The resumed epoch's record is the uninterrupted run's: its loss and accuracy over the
    // whole epoch (the batch before the interruption too), not over this run's batches alone.
    const record = (run: Run, epoch: number) => {
      const r = records(run).find((r) => r.type === "epoch" && r.epoch === epoch);
      const { seconds: _s, trainImagesPerSecond: _t, saved: _p, ...rest } = r;
      return rest;
    };
    assert.deepEqual(record(rest, 2), record(whole, 2));
    assert.deepEqual([...steps(first), ...steps(rest)], steps(whole));
    assert.equal(steps(whole).length, 6);
    const end = (await readSidecar(`${root}/split/b.last.pth`)).progress;
    assert.deepEqual([end?.epoch, end?.step, end?.epochBatches], [2, 6, 0]);
    const a = await loadWeights(`${root}/whole/b.last.pth`);
    const b = await loadWeights(`${root}/split/b.last.pth`);
    assert.deepEqual([...b.keys()], [...a.keys()]);
    for (const [key, tensor] of a) assert.deepEqual(b.get(key)?.data, tensor.data, key);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("train: --epochs past the data loader's 2^32 epochs is refused before any step", async () => {
  const root = await folder(MIXED);
  try {
    // The loader runs epochs 0 to 2^32 - 1 (seeds take 32-bit epochs): this run trained on
    // towards epoch 2^32, which repeated epoch 0's order (and now is the loader's refusal).
    const long = await task("train", [
      `${root}/data`,
      ...FAST,
      ...["--epochs", "4294967297", "--out", `${root}/b.pth`],
    ]);
    assert.equal(long.code, 2, long.stderr);
    assert.match(
      long.stderr,
      /^Error: This run may take up to 4294967297 epochs \(--epochs 4294967297 of \d+ batches\): the epochs count would pass 2\^32 \(4294967296\), the most epochs the data loader runs; expected fewer$/m,
    );
    assert.deepEqual([...Deno.readDirSync(root)].map((e) => e.name), ["data"], "nothing written");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
