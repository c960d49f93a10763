import assert from "node:assert/strict";
import { decodeImage, IMAGENET_MEAN, IMAGENET_STD, preprocess } from "../src/image/mod.ts";

const DIR = new URL("./fixtures/images/", import.meta.url);
const manifest: { input: string; expected: string; source: string }[] = JSON.parse(
  await Deno.readTextFile(new URL("manifest.json", DIR)),
);

for (const { input, expected, source } of manifest) {
  Deno.test(`preprocess matches PIL + torchvision: ${input} (${source})`, async () => {
    const tensor = await preprocess(new URL(input, DIR));
    assert.deepEqual(tensor.shape, [1, 3, 224, 224]);
    const reference = decodeImage(await Deno.readFile(new URL(expected, DIR)));
    const pixels = 224 * 224;
    // PNGs and JPEGs alike to the level (the JPEG decoder gives libjpeg-turbo's bytes; a grey
    // JPEG, resized as one channel, gives the three equal channels of convert("RGB")): 1e-3 is
    // the float slack of turning the tensor back into levels.
    let max = 0;
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < pixels; i++) {
        const level = (tensor.data[c * pixels + i] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255;
        max = Math.max(max, Math.abs(level - reference.data[i * 3 + c]));
      }
    }
    console.log(`${input}: max ${max.toFixed(3)} levels`);
    assert(max <= 1e-3, `max ${max} levels from torchvision's`);
  });
}

Deno.test("ToTensor + Normalize: the Wasm SIMD kernel gives the TypeScript path's float32 bits", async () => {
  const { normalizeToChw } = await import("../src/image/normalize.ts");
  let seed = 7;
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  let checked = 0;
  for (const [width, height] of [[1, 1], [3, 1], [7, 5], [224, 224], [33, 17]]) {
    const data = Uint8Array.from({ length: width * height * 3 }, () => Math.floor(random() * 256));
    data[0] = 0;
    data[data.length - 1] = 255;
    for (
      const [mean, std] of [
        [IMAGENET_MEAN, IMAGENET_STD],
        [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]],
        [[random(), -random(), 3.7], [random() + 0.01, 1e-3, -2.5]],
      ]
    ) {
      const m = Float32Array.from(mean);
      const s = Float32Array.from(std);
      const simd = normalizeToChw({ data, width, height }, m, s);
      const ts = normalizeToChw({ data, width, height }, m, s, { simd: false });
      assert.equal(simd.length, 3 * width * height);
      for (let i = 0; i < ts.length; i++) {
        if (!Object.is(simd[i], ts[i])) {
          assert.fail(
            `${width}x${height}, mean ${mean}: element ${i} is ${simd[i]}, expected ${ts[i]}`,
          );
        }
      }
      checked++;
    }
  }
  assert.equal(checked, 15);
});

Deno.test("ToTensor + Normalize of a grey image: its RGB replica's tensor, Wasm SIMD and TypeScript", async () => {
  const { normalizeToChw } = await import("../src/image/normalize.ts");
  const { rgbOf } = await import("../src/image/pixels.ts");
  const m = Float32Array.from(IMAGENET_MEAN);
  const s = Float32Array.from(IMAGENET_STD);
  for (const [width, height] of [[1, 1], [3, 1], [7, 5], [224, 224], [33, 17]]) {
    const data = Uint8Array.from({ length: width * height }, (_, i) => (i * 37 + 11) & 255);
    const grey = { data, width, height, channels: 1 as const };
    const expected = normalizeToChw(rgbOf(grey), m, s, { simd: false });
    for (const simd of [true, false]) {
      const ours = normalizeToChw(grey, m, s, { simd });
      assert.equal(ours.length, expected.length);
      for (let i = 0; i < ours.length; i++) {
        if (!Object.is(ours[i], expected[i])) {
          assert.fail(
            `${width}x${height} (simd ${simd}): element ${i} is ${ours[i]}, expected ${
              expected[i]
            }`,
          );
        }
      }
    }
  }
});

Deno.test("a JPEG the resize leaves as it is: its pixels, read where the decoder made them, stay right", async () => {
  // astronaut_baseline.jpg is 512x512: with resize and crop 512 nothing is resized, so the
  // normalisation reads the decoder's output itself, which transformSource leaves in the kernels'
  // memory. The normalisation needs more memory than the decode did (15 against about 8 bytes
  // per pixel), and growing it detaches the decoder's view: in a fresh process, where nothing
  // larger was decoded before, the tensor must still be the one made from a copy of the pixels
  // (loadForTransform, then the transform).
  const script = `
    import { evalTransform, loadForTransform, transformSource } from "${new URL(
    "../src/image/preprocess.ts",
    import.meta.url,
  )}";
    import { checkLoadOptions } from "${new URL("../src/image/load.ts", import.meta.url)}";
    const path = "${new URL("astronaut_baseline.jpg", DIR).pathname}";
    const transform = evalTransform({ resize: 512, crop: 512 });
    const load = checkLoadOptions({});
    const inPlace = await transformSource(path, load, transform);
    const copied = transform(await loadForTransform(path, load, transform));
    let differ = 0;
    for (let i = 0; i < copied.length; i++) if (!Object.is(inPlace[i], copied[i])) differ++;
    console.log(copied.length, differ);
  `;
  const child = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(child.code, 0, new TextDecoder().decode(child.stderr));
  assert.equal(new TextDecoder().decode(child.stdout).trim(), `${3 * 512 * 512} 0`);
});
