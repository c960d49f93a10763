/**
 * Real PyTorch files in, PyTorch's logits out, and back: `.pth` files written
 * by `torch.save(model.state_dict())` of the reference GoogLeNet and of
 * torchvision's `googlenet()` (randomised BatchNorm statistics) give
 * PyTorch's logits through `loadWeights` + `loadStateDict`; our `stateDict()`
 * saved with `writePth` / `writeSafetensors` gives PyTorch the same logits
 * as ours. Runs Debian's PyTorch (`/usr/bin/python3`); without it, it says so
 * and skips. Tolerance: max |diff| <= 1e-4 * max |torch|.
 */

import assert from "node:assert/strict";
import { GoogLeNet, loadWeights, type Tensor, writePth, writeSafetensors } from "../mod.ts";
import { deterministicInput } from "../tools/deterministic.ts";
import { assertClose } from "./_support/assert_close.ts";

const PYTHON = "/usr/bin/python3";
const ROOT = new URL("../", import.meta.url);
const RTOL = 1e-4;

// save VARIANT PATH OUT: saves the model's state dict to PATH and its eval logits on
// deterministic_input("roundtrip", [2, 3, 224, 224]) to OUT (raw f32).
// run VARIANT PATH OUT: loads PATH (.pth with torch.load, else safetensors) into the model,
// strictly, and writes its logits to OUT.
const SCRIPT = `
import json, struct, sys
import numpy as np
import torch
sys.path[:0] = ["tools", "tools/reference"]
from deterministic import deterministic_input, fill_state_dict
import seed_googlenet
import torchvision

mode, variant, path, out = sys.argv[1:5]
if variant == "seed":
    model = seed_googlenet.GoogLeNet(aux_logits=True)
else:
    model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False, transform_input=True)
if mode == "save":
    fill_state_dict(model)
    torch.save(model.state_dict(), path)
elif path.endswith(".pth"):
    model.load_state_dict(torch.load(path), strict=True)
else:
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    sd = {k: torch.from_numpy(np.frombuffer(raw, "<f4", (v["data_offsets"][1] - v["data_offsets"][0]) // 4,
                                            8 + n + v["data_offsets"][0]).reshape(v["shape"]).copy())
          for k, v in header.items() if k != "__metadata__"}
    model.load_state_dict(sd, strict=True)
model.eval()
with torch.no_grad():
    y = model(torch.from_numpy(deterministic_input("roundtrip", [2, 3, 224, 224]).copy()))
open(out, "wb").write(y.numpy().astype("<f4").tobytes())
`;

async function torchAvailable(): Promise<string | null> {
  try {
    const { success, stderr } = await new Deno.Command(PYTHON, {
      args: ["-c", "import torch, torchvision"],
      stdout: "null",
      stderr: "piped",
    }).output();
    return success ? null : new TextDecoder().decode(stderr).trim().split("\n").at(-1)!;
  } catch (error) {
    return `${PYTHON} cannot be run: ${(error as Error).message}`;
  }
}

const missing = await torchAvailable();
if (missing) {
  console.log(
    `SKIP pytorch_roundtrip: needs Debian's python3-torch and python3-torchvision (${missing})`,
  );
}

async function torch(mode: "save" | "run", variant: string, path: string): Promise<Float32Array> {
  const out = await Deno.makeTempFile({ suffix: ".f32" });
  try {
    const { success, stderr } = await new Deno.Command(PYTHON, {
      args: ["-c", SCRIPT, mode, variant, path, out],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(success, `PyTorch ${mode} ${variant} failed:\n${new TextDecoder().decode(stderr)}`);
    const bytes = await Deno.readFile(out);
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  } finally {
    await Deno.remove(out);
  }
}

const input = deterministicInput("roundtrip", [2, 3, 224, 224]);

for (const variant of ["seed", "torchvision"] as const) {
  Deno.test({
    name:
      `a torch.save .pth of the ${variant} GoogLeNet gives PyTorch's logits through loadWeights + loadStateDict`,
    ignore: missing !== null,
    fn: async () => {
      const dir = await Deno.makeTempDir();
      try {
        const path = `${dir}/${variant}.pth`;
        const expected = await torch("save", variant, path);
        const model = await GoogLeNet.create({ variant, threads: 2 });
        model.loadStateDict(await loadWeights(path));
        const logits = (await model.forward(input)) as Tensor;
        const rel = assertClose(logits.data, expected, RTOL, `${variant} logits`);
        console.log(`  ${variant}: max rel error ${rel.toExponential(2)}`);

        // And back: our state dict, written by us, read by PyTorch, gives PyTorch our logits.
        for (
          const [name, bytes] of [["ours.pth", writePth(model.stateDict())], [
            "ours.safetensors",
            writeSafetensors(model.stateDict()),
          ]] as const
        ) {
          await Deno.writeFile(`${dir}/${name}`, bytes);
          const back = await torch("run", variant, `${dir}/${name}`);
          const relBack = assertClose(back, logits.data, RTOL, `${variant} ${name} in PyTorch`);
          console.log(
            `  ${variant} ${name} -> torch.load: max rel error ${relBack.toExponential(2)}`,
          );
        }
        await model.dispose();
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
