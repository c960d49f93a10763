import assert from "node:assert/strict";
import { decodeImage, IMAGENET_MEAN, IMAGENET_STD, preprocess } from "../src/image/mod.ts";

const DIR = new URL("./fixtures/images/", import.meta.url);
const manifest: { input: string; expected: string; source: string }[] = JSON.parse(
  await Deno.readTextFile(new URL("manifest.json", DIR)),
);

/**
 * Largest and mean absolute difference, in 8-bit levels (1/255), between our
 * tensor and PIL + torchvision's. JPEG decoders differ (jpeg-js: float IDCT,
 * nearest-neighbour chroma upsampling; libjpeg-turbo: integer IDCT, "fancy"
 * triangle upsampling), so JPEG inputs get a looser bound than PNG inputs,
 * which must match exactly.
 */
const TOLERANCE = {
  png: { max: 0, mean: 0 },
  jpg: { max: 36, mean: 1 },
};

for (const { input, expected, source } of manifest) {
  Deno.test(`preprocess matches PIL + torchvision: ${input} (${source})`, async () => {
    const tensor = await preprocess(new URL(input, DIR));
    assert.deepEqual(tensor.shape, [1, 3, 224, 224]);
    const reference = decodeImage(await Deno.readFile(new URL(expected, DIR)));
    const pixels = 224 * 224;
    let max = 0;
    let sum = 0;
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < pixels; i++) {
        const level = (tensor.data[c * pixels + i] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255;
        const diff = Math.abs(level - reference.data[i * 3 + c]);
        max = Math.max(max, diff);
        sum += diff;
      }
    }
    const mean = sum / (3 * pixels);
    const bound = TOLERANCE[input.endsWith(".png") ? "png" : "jpg"];
    console.log(`${input}: max ${max.toFixed(3)}, mean ${mean.toFixed(4)} levels`);
    assert(max <= bound.max + 1e-3, `max ${max} > ${bound.max}`);
    assert(mean <= bound.mean + 1e-3, `mean ${mean} > ${bound.mean}`);
  });
}
