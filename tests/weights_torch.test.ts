/**
 * Round trips with real PyTorch (`/usr/bin/python3`): files written here load
 * into the reference GoogLeNet with `load_state_dict(strict=True)`, and
 * `torch.save` output reads back here, all bit for bit against
 * `tools/deterministic.{ts,py}`. Skipped, with the reason printed, when
 * Python or PyTorch is missing.
 */
import assert from "node:assert/strict";
import { deterministicStateDict } from "../tools/deterministic.ts";
import { readPth, writePth, writeSafetensors } from "../src/weights/mod.ts";

const PYTHON = "/usr/bin/python3";
const ROOT = new URL("../", import.meta.url);
const shapes: [string, number[]][] = JSON.parse(
  await Deno.readTextFile(new URL("tests/fixtures/state_dict.json", ROOT)),
).aux;

/** Loads the file argv[2] (format argv[1]) into the reference GoogLeNet, or saves one there. */
const SCRIPT = `
import json, struct, sys
from collections import OrderedDict
import numpy as np
import torch
sys.path[:0] = ["tools", "tools/reference"]
from deterministic import deterministic_parameter, fill_state_dict
from seed_googlenet import GoogLeNet

mode, path = sys.argv[1], sys.argv[2]
model = GoogLeNet(aux_logits=True)
if mode == "save":
    torch.save(fill_state_dict(model).state_dict(), path)
    sys.exit(0)
if mode == "pth":
    sd = torch.load(path)
    assert type(sd) is OrderedDict, type(sd)
else:
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    sd = OrderedDict()
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        assert v["dtype"] == "F32"
        sd[k] = torch.from_numpy(np.frombuffer(raw, "<f4", (b - a) // 4, 8 + n + a).reshape(v["shape"]).copy())
model.load_state_dict(sd, strict=True)
for k, v in model.state_dict().items():
    assert v.dtype == torch.float32, k
    assert np.array_equal(v.numpy(), deterministic_parameter(k, list(v.shape))), k
print("ok", len(sd))
`;

async function python(...args: string[]): Promise<{ ok: boolean; output: string }> {
  const { success, stdout, stderr } = await new Deno.Command(PYTHON, {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { ok: success, output: decoder.decode(stdout) + decoder.decode(stderr) };
}

async function skipReason(): Promise<string | undefined> {
  try {
    const { ok, output } = await python("-c", "import torch, numpy");
    return ok
      ? undefined
      : `PyTorch is not importable by ${PYTHON}: ${output.trim().split("\n").at(-1)}`;
  } catch (error) {
    return `${PYTHON} cannot be run: ${(error as Error).message}`;
  }
}

const reason = await skipReason();
if (reason) console.log(`Skipping the PyTorch round trips: ${reason}`);

async function withTempFile(suffix: string, fn: (path: string) => Promise<void>): Promise<void> {
  const path = await Deno.makeTempFile({ suffix });
  try {
    await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

for (const [format, write] of [["pth", writePth], ["safetensors", writeSafetensors]] as const) {
  Deno.test({
    name: `${format} written here loads into the reference GoogLeNet (strict) bit for bit`,
    ignore: reason !== undefined,
    fn: () =>
      withTempFile(`.${format}`, async (path) => {
        await Deno.writeFile(path, write(deterministicStateDict(shapes)));
        const { ok, output } = await python("-c", SCRIPT, format, path);
        assert.ok(ok, output);
        assert.equal(output.trim(), `ok ${shapes.length}`);
      }),
  });
}

Deno.test({
  name: "readPth reads the reference GoogLeNet's torch.save bit for bit",
  ignore: reason !== undefined,
  fn: () =>
    withTempFile(".pth", async (path) => {
      const { ok, output } = await python("-c", SCRIPT, "save", path);
      assert.ok(ok, output);
      const read = readPth(await Deno.readFile(path));
      const want = deterministicStateDict(shapes);
      assert.deepEqual([...read.keys()], [...want.keys()]);
      for (const [key, tensor] of want) {
        assert.deepEqual(read.get(key)!.shape, tensor.shape, key);
        assert.deepEqual(read.get(key)!.data, tensor.data, key);
      }
    }),
});
