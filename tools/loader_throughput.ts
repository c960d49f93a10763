/**
 * Measures the DataLoader's decode + augment rate (images per second, 224x224
 * output) on real photos and on Fashion-MNIST, with 0, 1 and 2 workers:
 *
 *     deno run --allow-read --allow-write tools/loader_throughput.ts [--copies 6] [--fashion 1024]
 *
 * Photos: scikit-image's JPEGs (python3-skimage's `skimage/data/`: hubble_deep_field 1000x872,
 * retina 1411x1411, rocket 427x640, and its deliberately truncated.jpg, which the loader skips)
 * plus assets/chelsea.jpg, each copied `--copies` times into a temporary ImageFolder, through
 * `RandomResizedCrop(224)` + `RandomHorizontalFlip()`. Fashion-MNIST: the first `--fashion` test
 * images, 28x28 grey upscaled to 224x224x3 (`Resize([224, 224])`), as the training command uses
 * them. Each row is one epoch after a warm-up epoch with the same (persistent) workers.
 * `--step-ms N` keeps the calling thread busy N ms after each batch, as a training step would,
 * and the "waited" column is how long the loop then waited for its next batch.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  DataLoader,
  type Dataset,
  ImageFolder,
  loadIdxDataset,
  Subset,
  trainTransform,
} from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    copies: { type: "string", default: "6" },
    fashion: { type: "string", default: "1024" },
    workers: { type: "string", default: "0,1,2" },
    "step-ms": { type: "string", default: "0" },
  },
});
const copies = Number(values.copies);
const fashionCount = Number(values.fashion);
const workerCounts = values.workers.split(",").map(Number);
/** A stand-in for a training step: the calling thread busy for this long after each batch. */
const stepMs = Number(values["step-ms"]);
const SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data/";

async function measure(name: string, dataset: Dataset, augment: "torchvision" | "none") {
  for (const workers of workerCounts) {
    const loader = new DataLoader(dataset, {
      transform: trainTransform(augment, { size: 224 }),
      batchSize: 16,
      shuffle: true,
      workers,
      persistentWorkers: true,
    });
    for await (const _ of loader); // warm-up: workers start, code is compiled
    const start = performance.now();
    let images = 0;
    let waited = 0;
    let asked = performance.now();
    for await (const batch of loader) {
      waited += performance.now() - asked;
      images += batch.labels.length;
      const until = performance.now() + stepMs;
      while (performance.now() < until); // the "training step"
      asked = performance.now();
    }
    const seconds = (performance.now() - start) / 1000;
    loader.close();
    console.log(
      `| ${name} | ${workers} | ${images} | ${seconds.toFixed(2)} | ${
        (images / seconds).toFixed(1)
      } | ${(waited / 1000).toFixed(2)} | ${loader.skipped.length} |`,
    );
  }
}

console.log(`Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores`);
console.log(`step ${stepMs} ms per batch of 16 on the calling thread`);
console.log("| data | workers | images | s | images/s | waited for batches, s | skipped |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");

const root = await Deno.makeTempDir({ prefix: "loader_throughput_" });
try {
  const photos = ["hubble_deep_field.jpg", "retina.jpg", "rocket.jpg", "truncated.jpg"]
    .map((f) => SKIMAGE + f)
    .concat([new URL("../assets/chelsea.jpg", import.meta.url).pathname]);
  for (const photo of photos) {
    const stem = photo.slice(photo.lastIndexOf("/") + 1, photo.lastIndexOf("."));
    await Deno.mkdir(`${root}/${stem}`);
    for (let i = 0; i < copies; i++) await Deno.copyFile(photo, `${root}/${stem}/${i}.jpg`);
  }
  await measure(
    "JPEG photos, RandomResizedCrop(224) + flip",
    await ImageFolder.open(root),
    "torchvision",
  );
} finally {
  await Deno.remove(root, { recursive: true });
}

const FASHION = "/usr/share/datasets/fashion-mnist/";
const fashion = await loadIdxDataset({
  images: FASHION + "t10k-images-idx3-ubyte.gz",
  labels: FASHION + "t10k-labels-idx1-ubyte.gz",
});
await measure(
  "Fashion-MNIST 28 -> 224, 3 channels",
  new Subset(fashion, Array.from({ length: fashionCount }, (_, i) => i)),
  "none",
);
