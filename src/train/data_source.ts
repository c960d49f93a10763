/**
 * What the train and evaluate commands accept as a data set: a folder of
 * class folders (torchvision's `ImageFolder`), or a folder holding MNIST-style
 * IDX files such as Debian's `/usr/share/datasets/fashion-mnist` (the word
 * `fashion-mnist` names that folder), recognised by its file names.
 *
 * @module
 */

import { DatasetError } from "../errors.ts";
import type { Dataset } from "../data/dataset.ts";
import { Subset } from "../data/dataset.ts";
import { loadIdxDataset } from "../data/idx.ts";
import { ImageFolder } from "../data/image_folder.ts";
import { Random } from "../data/random.ts";

/** Where Debian's `dataset-fashion-mnist` package puts its files. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

/** A data set opened by {@linkcode openDataset}, with what to tell the user about it. */
export interface OpenedDataset {
  /** The samples. */
  dataset: Dataset;
  /** `"idx"` or `"folder"`. */
  kind: "idx" | "folder";
  /** Warnings (empty classes, a single class, skipped files). */
  warnings: readonly string[];
  /** A short description (`"Fashion-MNIST train (60000 images)"`). */
  description: string;
}

/** Options of {@linkcode openDataset}. */
export interface OpenDatasetOptions {
  /** For IDX folders: the training files (`train-*`) or the test files (`t10k-*`). @default {"train"} */
  split?: "train" | "test";
}

/** The IDX file pair of a split in `dir`, raw or gzip, or null when absent. */
async function idxFiles(
  dir: string,
  split: "train" | "test",
): Promise<{ images: string; labels: string } | null> {
  const prefix = split === "train" ? "train" : "t10k";
  const find = async (stem: string) => {
    for (const name of [stem, `${stem}.gz`]) {
      try {
        if ((await Deno.stat(`${dir}/${name}`)).isFile) return `${dir}/${name}`;
      } catch { /* try the next name */ }
    }
    return null;
  };
  const images = await find(`${prefix}-images-idx3-ubyte`);
  const labels = await find(`${prefix}-labels-idx1-ubyte`);
  return images && labels ? { images, labels } : null;
}

/**
 * Opens a data set for training or evaluation.
 *
 * @param path A folder of class folders, a folder of IDX files, or `fashion-mnist`.
 * @param options Which IDX split.
 * @returns The data set, its kind, warnings and a description.
 * @throws {DatasetError} When the folder is neither, or its files are unreadable.
 *
 * @example
 * ```ts
 * import { openDataset } from "./data_source.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/cat`);
 * await Deno.copyFile("assets/chelsea.jpg", `${dir}/cat/a.jpg`);
 * const { dataset, kind } = await openDataset(dir);
 * console.log(kind, dataset.classes); // "folder" ["cat"]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function openDataset(
  path: string,
  options: OpenDatasetOptions = {},
): Promise<OpenedDataset> {
  const split = options.split ?? "train";
  const dir = path === "fashion-mnist" ? FASHION_MNIST_DIR : path.replace(/(.)\/+$/, "$1");
  const files = await idxFiles(dir, split);
  if (files) {
    const dataset = await loadIdxDataset(files);
    const name = dataset.classes[0] === "T-shirt/top" ? "Fashion-MNIST" : "IDX";
    return {
      dataset,
      kind: "idx",
      warnings: [],
      description:
        `${name} ${split} (${dataset.length} images ${dataset.width}x${dataset.height}, ${dataset.classes.length} classes) from ${dir}`,
    };
  }
  if (path === "fashion-mnist" || (await idxFiles(dir, split === "train" ? "test" : "train"))) {
    throw new DatasetError(
      `No ${split} IDX files in ${dir}: expected ${
        split === "train" ? "train" : "t10k"
      }-images-idx3-ubyte(.gz) and the labels file next to it${
        path === "fashion-mnist" ? " (apt install dataset-fashion-mnist)" : ""
      }`,
    );
  }
  const folder = await ImageFolder.open(dir);
  return {
    dataset: folder,
    kind: "folder",
    warnings: folder.warnings,
    description: `${folder.length} images in ${folder.classes.length} class folders of ${dir}`,
  };
}

/**
 * A seeded random subset of `limit` samples (in ascending index order), or
 * the data set itself when it is not larger.
 *
 * @param dataset The data set.
 * @param limit Most samples to keep.
 * @param seed Seed of the choice.
 * @returns The subset.
 *
 * @example
 * ```ts
 * import { limitDataset } from "./data_source.ts";
 * import { IdxDataset } from "../data/idx.ts";
 * const dataset = new IdxDataset({
 *   images: { dtype: "uint8", shape: [10, 1, 1], data: new Uint8Array(10) },
 *   labels: { dtype: "uint8", shape: [10], data: new Uint8Array(10) },
 * });
 * console.log(limitDataset(dataset, 4, 0).length); // 4
 * ```
 */
export function limitDataset(dataset: Dataset, limit: number, seed: number): Dataset {
  if (limit >= dataset.length) return dataset;
  const order = new Random(seed ^ 0x11a1).shuffle(
    Array.from({ length: dataset.length }, (_, i) => i),
  );
  return new Subset(dataset, order.slice(0, limit).sort((a, b) => a - b));
}
