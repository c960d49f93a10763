/**
 * The IDX format of MNIST and Fashion-MNIST (raw or gzip-compressed), and a
 * data set that pairs an images file with a labels file.
 *
 * An IDX file is `00 00 <type> <rank>`, then `rank` big-endian u32 dimensions,
 * then the elements, big-endian, row-major.
 *
 * @module
 */

import { Gunzip } from "npm:fflate@0.8.2";
import { DatasetError, OptionError } from "../errors.ts";
import { readBytes } from "../read_bytes.ts";
import { checkBoolean, checkInteger, checkOptions, describeValue } from "../validate.ts";
import { checkIndex, type Dataset, type RawSample, type Sample } from "./dataset.ts";

/** Element types of the IDX format, by PyTorch-style name. */
export type IdxDType = "uint8" | "int8" | "int16" | "int32" | "float32" | "float64";

/** Typed array of each {@linkcode IdxDType}. */
export type IdxData =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Int32Array
  | Float32Array
  | Float64Array;

/** A parsed IDX file: the element type, the dimensions and the elements (native byte order). */
export interface IdxArray {
  /** Element type. */
  readonly dtype: IdxDType;
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** The elements, row-major. */
  readonly data: IdxData;
}

/** Options of {@linkcode readIdx} and {@linkcode parseIdx}. */
export interface ReadIdxOptions {
  /**
   * Largest number of bytes the file (compressed or not) and its decoded
   * elements may take; checked before anything that size is allocated.
   *
   * @default {536_870_912} (512 MiB)
   */
  maxBytes?: number;
}

/** Default {@linkcode ReadIdxOptions.maxBytes}: 512 MiB. */
export const DEFAULT_IDX_MAX_BYTES = 512 * 1024 * 1024;

const TYPES: Record<number, { dtype: IdxDType; size: number }> = {
  0x08: { dtype: "uint8", size: 1 },
  0x09: { dtype: "int8", size: 1 },
  0x0b: { dtype: "int16", size: 2 },
  0x0c: { dtype: "int32", size: 4 },
  0x0d: { dtype: "float32", size: 4 },
  0x0e: { dtype: "float64", size: 8 },
};

/** Milliseconds an IDX file's read may take (a device that never answers). */
const IDX_TIMEOUT = 300_000;

/** What `readBytes` throws for an IDX file, before `readIdx` names the file. */
class ReadError extends DatasetError {}

/** Compressed bytes fed to the inflater at a time (bounds each step's output). */
const INFLATE_STEP = 1 << 14;

/**
 * Reads an IDX file from bytes, a path or a `file:` URL. Gzip is recognised by
 * its magic bytes (`1f 8b`), not by the name.
 *
 * @param source The file's bytes, its path or a `file:` URL.
 * @param options The byte budget.
 * @returns The parsed array.
 * @throws {OptionError} When an option is unknown or of the wrong kind (`maxBytes` an integer >= 1).
 * @throws {DatasetError} When the file cannot be read, is not IDX, is
 * truncated or longer than its header says, or exceeds `maxBytes`.
 *
 * @example
 * ```ts
 * import { readIdx } from "./idx.ts";
 * const bytes = new Uint8Array([0, 0, 8, 2, 0, 0, 0, 1, 0, 0, 0, 2, 5, 6]);
 * const { dtype, shape, data } = await readIdx(bytes);
 * console.log(dtype, shape, data); // uint8 [1, 2] Uint8Array(2) [5, 6]
 * ```
 */
export async function readIdx(
  source: Uint8Array | string | URL,
  options: ReadIdxOptions = {},
): Promise<IdxArray> {
  const maxBytes = budget("readIdx", options);
  if (source instanceof Uint8Array) return parseIdx(source, { maxBytes });
  if (typeof source !== "string" && !(source instanceof URL)) {
    throw new OptionError(
      `Expected an IDX file's bytes (a Uint8Array), path or file: URL, got ${
        describeValue(source)
      }`,
    );
  }
  let bytes: Uint8Array;
  try {
    const { size } = await Deno.stat(source);
    if (size > maxBytes) {
      throw new DatasetError(
        `IDX file ${source} is ${size} bytes: expected at most ${maxBytes} (maxBytes)`,
      );
    }
    // Not Deno.readFile: it would wait forever on a FIFO and read a device until memory runs out.
    bytes = await readBytes(source, {
      maxBytes,
      timeout: IDX_TIMEOUT,
      error: ReadError,
      what: "IDX file",
      instead: "read it yourself and pass the bytes",
    });
  } catch (error) {
    if (error instanceof DatasetError && !(error instanceof ReadError)) throw error;
    throw new DatasetError(`Cannot read IDX file ${source}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  try {
    return parseIdx(bytes, { maxBytes });
  } catch (error) {
    if (error instanceof DatasetError) {
      throw new DatasetError(`${source}: ${error.message}`, { cause: error });
    }
    throw error;
  }
}

/**
 * Parses IDX bytes (raw or gzip). Every dimension is checked against the
 * bytes that follow the header, and the element count against `maxBytes`,
 * before the element array is allocated; gzip input is inflated in steps, so
 * a file that inflates beyond its header's size stops there.
 *
 * @param bytes The file's bytes.
 * @param options The byte budget.
 * @returns The parsed array.
 * @throws {OptionError} When an option is unknown or of the wrong kind (`maxBytes` an integer >= 1).
 * @throws {DatasetError} When the bytes are not IDX, are truncated or longer
 * than the header says, or exceed `maxBytes`.
 *
 * @example
 * ```ts
 * import { parseIdx } from "./idx.ts";
 * const { shape } = parseIdx(new Uint8Array([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]));
 * console.log(shape); // [3]
 * ```
 */
export function parseIdx(bytes: Uint8Array, options: ReadIdxOptions = {}): IdxArray {
  const maxBytes = budget("parseIdx", options);
  if (bytes.length > maxBytes) {
    throw new DatasetError(
      `IDX input is ${bytes.length} bytes: expected at most ${maxBytes} (maxBytes)`,
    );
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return parseGzip(bytes, maxBytes);
  const header = readHeader(bytes, maxBytes);
  if (header === undefined) {
    throw new DatasetError(
      `Truncated IDX header: expected at least ${
        bytes.length < 4 ? 4 : 4 + 4 * bytes[3]
      } bytes, got ${bytes.length}`,
    );
  }
  checkLength(bytes.length - header.offset, header.dataBytes);
  return {
    ...header.meta,
    data: toNative(bytes.subarray(header.offset), header.meta.dtype, header.count),
  };
}

interface Header {
  meta: { dtype: IdxDType; shape: readonly number[] };
  /** Bytes before the elements. */
  offset: number;
  count: number;
  dataBytes: number;
}

/** The header at the start of `bytes`, or `undefined` when more bytes are needed. */
function readHeader(bytes: Uint8Array, maxBytes: number): Header | undefined {
  if (bytes.length < 4) return undefined;
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0"));
    throw new DatasetError(
      `Not an IDX file: expected magic 00 00 <type> <rank> or gzip 1f 8b, got ${head.join(" ")}`,
    );
  }
  const type = TYPES[bytes[2]];
  if (type === undefined) {
    throw new DatasetError(
      `Unsupported IDX element type 0x${
        bytes[2].toString(16).padStart(2, "0")
      }: expected 0x08, 0x09, 0x0b, 0x0c, 0x0d or 0x0e`,
    );
  }
  const rank = bytes[3];
  const offset = 4 + 4 * rank;
  if (bytes.length < offset) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, offset);
  const shape: number[] = [];
  let count = 1;
  for (let d = 0; d < rank; d++) {
    const dim = view.getUint32(4 + 4 * d);
    shape.push(dim);
    count *= dim;
  }
  const dataBytes = count * type.size;
  if (dataBytes > maxBytes) {
    throw new DatasetError(
      `IDX header declares shape [${
        shape.join(", ")
      }] of ${type.dtype} (${dataBytes} bytes): expected at most ${maxBytes} bytes (maxBytes)`,
    );
  }
  return { meta: { dtype: type.dtype, shape: Object.freeze(shape) }, offset, count, dataBytes };
}

function checkLength(actual: number, expected: number): void {
  if (actual < expected) {
    throw new DatasetError(
      `Truncated IDX data: the header declares ${expected} bytes of elements, got ${actual}`,
    );
  }
  if (actual > expected) {
    throw new DatasetError(
      `IDX data is ${actual} bytes, longer than the ${expected} bytes its header declares`,
    );
  }
}

/** Inflates step by step: the header first, then exactly the bytes it declares. */
function parseGzip(bytes: Uint8Array, maxBytes: number): IdxArray {
  let head = new Uint8Array(0);
  let header: Header | undefined;
  let body: Uint8Array | undefined;
  let filled = 0;
  let excess = 0;
  const inflater = new Gunzip((chunk) => {
    if (header === undefined) {
      const joined = new Uint8Array(head.length + chunk.length);
      joined.set(head);
      joined.set(chunk, head.length);
      header = readHeader(joined, maxBytes);
      if (header === undefined) {
        if (joined.length > 4 + 4 * 255) throw new DatasetError("Malformed IDX header");
        head = joined;
        return;
      }
      body = new Uint8Array(header.dataBytes);
      chunk = joined.subarray(header.offset);
    }
    const take = Math.min(chunk.length, body!.length - filled);
    body!.set(chunk.subarray(0, take), filled);
    filled += take;
    excess += chunk.length - take;
  });
  try {
    for (let at = 0; at < bytes.length && excess === 0; at += INFLATE_STEP) {
      const end = Math.min(at + INFLATE_STEP, bytes.length);
      inflater.push(bytes.subarray(at, end), end === bytes.length);
    }
  } catch (error) {
    if (error instanceof DatasetError) throw error;
    throw new DatasetError(`Corrupt gzip stream in IDX file: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const found = header as Header | undefined;
  if (found === undefined) {
    throw new DatasetError(
      `Truncated IDX header: the gzip stream inflates to ${head.length} bytes`,
    );
  }
  checkLength(filled + excess, found.dataBytes);
  return { ...found.meta, data: toNative(body!, found.meta.dtype, found.count) };
}

/** Big-endian elements to a typed array (bytes are copied for 1-byte types only when needed). */
function toNative(bytes: Uint8Array, dtype: IdxDType, count: number): IdxData {
  if (dtype === "uint8") return bytes.subarray(0, count);
  if (dtype === "int8") return new Int8Array(bytes.buffer, bytes.byteOffset, count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case "int16":
      return Int16Array.from({ length: count }, (_, i) => view.getInt16(2 * i));
    case "int32":
      return Int32Array.from({ length: count }, (_, i) => view.getInt32(4 * i));
    case "float32":
      return Float32Array.from({ length: count }, (_, i) => view.getFloat32(4 * i));
    case "float64":
      return Float64Array.from({ length: count }, (_, i) => view.getFloat64(8 * i));
  }
}

/** The checked `maxBytes` of `name`'s options (a misspelt name is an error, not the default). */
function budget(name: string, options: ReadIdxOptions | undefined): number {
  const o = checkOptions(name, options, ["maxBytes"]);
  return checkInteger("maxBytes", o.maxBytes, { min: 1, default: DEFAULT_IDX_MAX_BYTES });
}

/** Zalando's Fashion-MNIST class names, as torchvision's `FashionMNIST.classes`. */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
]);

/**
 * Fashion-MNIST's pixel mean and standard deviation over the 60,000 training
 * images, in [0, 1] units (computed by `tests/data_idx.test.ts` from the real
 * file). The loader's default normalisation is mean 0.5 / std 0.5 instead.
 */
export const FASHION_MNIST_MEAN = 0.28604;
/** See {@linkcode FASHION_MNIST_MEAN}. */
export const FASHION_MNIST_STD = 0.35302;

/**
 * The first 16 labels of Fashion-MNIST's training and test label files, by
 * sample count: how {@linkcode IdxDataset} recognises the set.
 */
const FASHION_MNIST_PREFIX: Record<number, string> = {
  60000: "9,0,0,3,0,2,7,2,5,5,0,9,5,5,7,9",
  10000: "9,2,1,1,6,1,4,6,5,7,4,5,7,3,4,1",
};

/** The parsed files and options of an {@linkcode IdxDataset}. */
export interface IdxDatasetInit {
  /** `uint8` images `[N, H, W]`. */
  images: IdxArray;
  /** `uint8` labels `[N]`. */
  labels: IdxArray;
  /**
   * Class names. Default: Fashion-MNIST's names when the labels are those of
   * its training or test file, else `"0"`, `"1"`, ... up to the largest label
   * (at least ten).
   */
  classes?: readonly string[];
}

/**
 * An images file and a labels file as a data set, like torchvision's `MNIST`
 * and `FashionMNIST`: grey images replicated to 3 channels.
 *
 * @example
 * ```ts
 * import { IdxDataset } from "./idx.ts";
 * const dataset = new IdxDataset({
 *   images: { dtype: "uint8", shape: [1, 1, 2], data: new Uint8Array([0, 255]) },
 *   labels: { dtype: "uint8", shape: [1], data: new Uint8Array([3]) },
 * });
 * const { image, label } = await dataset.get(0);
 * console.log(image.data, label, dataset.classes[label]); // Uint8Array(6) [0, 0, 0, 255, 255, 255] 3 "3"
 * ```
 */
export class IdxDataset implements Dataset {
  /** Number of samples. */
  readonly length: number;
  /** Class names. */
  readonly classes: readonly string[];
  /** Image height in pixels. */
  readonly height: number;
  /** Image width in pixels. */
  readonly width: number;
  readonly #pixels: Uint8Array;
  readonly #labels: Uint8Array;

  /**
   * Pairs parsed images and labels.
   *
   * @param init The parsed files and optional class names.
   * @throws {DatasetError} When the images are not `uint8 [N, H, W]`, the
   * labels not `uint8 [N]` with the same `N`, or a label has no class name.
   */
  constructor(init: IdxDatasetInit) {
    const { images, labels } = init;
    if (images.dtype !== "uint8" || images.shape.length !== 3) {
      throw new DatasetError(
        `Expected IDX images of type uint8 and shape [N, H, W], got ${images.dtype} [${
          images.shape.join(", ")
        }]`,
      );
    }
    if (labels.dtype !== "uint8" || labels.shape.length !== 1) {
      throw new DatasetError(
        `Expected IDX labels of type uint8 and shape [N], got ${labels.dtype} [${
          labels.shape.join(", ")
        }]`,
      );
    }
    const [n, height, width] = images.shape;
    if (labels.shape[0] !== n) {
      throw new DatasetError(`Expected ${n} labels for ${n} images, got ${labels.shape[0]}`);
    }
    if (n > 0 && (height < 1 || width < 1)) {
      throw new DatasetError(`Expected images of at least 1x1 pixels, got ${width}x${height}`);
    }
    const labelData = labels.data as Uint8Array;
    let top = -1;
    for (const label of labelData) top = Math.max(top, label);
    const classes = init.classes ?? defaultClasses(labelData, top);
    if (top >= classes.length) {
      throw new DatasetError(
        `Label ${top} has no class name: expected labels below ${classes.length} (classes)`,
      );
    }
    this.length = n;
    this.height = height;
    this.width = width;
    this.classes = Object.freeze([...classes]);
    this.#pixels = images.data as Uint8Array;
    this.#labels = labelData;
  }

  /**
   * The grey pixels of sample `index` with its label.
   *
   * @param index From 0 to `length - 1`.
   * @returns The raw sample (1-channel pixels, a view of the file's data).
   * @throws {OptionError} When `index` is out of range.
   */
  // deno-lint-ignore require-await
  async raw(index: number): Promise<RawSample> {
    checkIndex(index, this.length);
    const size = this.width * this.height;
    return {
      source: {
        data: this.#pixels.subarray(index * size, (index + 1) * size),
        width: this.width,
        height: this.height,
        channels: 1,
      },
      label: this.#labels[index],
      name: `image ${index}`,
    };
  }

  /**
   * Sample `index`, grey replicated to RGB.
   *
   * @param index From 0 to `length - 1`.
   * @returns The image and label.
   * @throws {OptionError} When `index` is out of range.
   */
  // deno-lint-ignore require-await
  async get(index: number): Promise<Sample> {
    checkIndex(index, this.length);
    const size = this.width * this.height;
    const grey = this.#pixels.subarray(index * size, (index + 1) * size);
    const data = new Uint8Array(size * 3);
    for (let i = 0; i < size; i++) data[3 * i] = data[3 * i + 1] = data[3 * i + 2] = grey[i];
    return { image: { data, width: this.width, height: this.height }, label: this.#labels[index] };
  }
}

function defaultClasses(labels: Uint8Array, top: number): readonly string[] {
  const prefix = Array.from(labels.subarray(0, 16)).join(",");
  if (FASHION_MNIST_PREFIX[labels.length] === prefix) return FASHION_MNIST_CLASSES;
  return Array.from({ length: Math.max(10, top + 1) }, (_, i) => String(i));
}

/** Options of {@linkcode loadIdxDataset}. */
export interface LoadIdxDatasetOptions extends ReadIdxOptions {
  /** The images file: bytes, a path or a `file:` URL. */
  images: Uint8Array | string | URL;
  /** The labels file: bytes, a path or a `file:` URL. */
  labels: Uint8Array | string | URL;
  /** Class names (see {@linkcode IdxDatasetInit.classes}). */
  classes?: readonly string[];
}

/**
 * Reads an images file and a labels file (raw or gzip) into an
 * {@linkcode IdxDataset}. `maxBytes` applies to each file.
 *
 * @param options The two files, the byte budget and optional class names.
 * @returns The data set.
 * @throws {OptionError} When an option is unknown or of the wrong kind (`maxBytes` an integer >= 1).
 * @throws {DatasetError} When a file is unreadable, malformed, over budget,
 * or the two do not pair up.
 *
 * @example
 * ```ts
 * import { loadIdxDataset } from "./idx.ts";
 * const images = new Uint8Array([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 9, 200]);
 * const labels = new Uint8Array([0, 0, 8, 1, 0, 0, 0, 2, 4, 7]);
 * const dataset = await loadIdxDataset({ images, labels });
 * console.log(dataset.length, (await dataset.get(1)).label); // 2 7
 * ```
 */
export async function loadIdxDataset(options: LoadIdxDatasetOptions): Promise<IdxDataset> {
  const o = checkOptions("loadIdxDataset", options, ["images", "labels", "classes", "maxBytes"]);
  const read = { maxBytes: budget("loadIdxDataset", { maxBytes: o.maxBytes }) };
  const [images, labels] = await Promise.all([readIdx(o.images, read), readIdx(o.labels, read)]);
  return new IdxDataset({ images, labels, classes: o.classes });
}

/** Options of {@linkcode loadFashionMnist}. */
export interface LoadFashionMnistOptions extends ReadIdxOptions {
  /** The folder with the four IDX files (gzip or not). @default {"/usr/share/datasets/fashion-mnist"} (Debian's `dataset-fashion-mnist`) */
  root?: string;
  /** The 60,000 training images (`train-*`) or the 10,000 test images (`t10k-*`). @default {true} */
  train?: boolean;
}

/**
 * Fashion-MNIST from its usual file names, like torchvision's
 * `FashionMNIST(root, train)`: `train-images-idx3-ubyte` and
 * `train-labels-idx1-ubyte` (or `t10k-*`), each `.gz` or raw.
 *
 * @param options The folder and the split.
 * @returns The data set, with Fashion-MNIST's class names.
 * @throws {OptionError} When an option is unknown or of the wrong kind (`maxBytes` an integer >= 1).
 * @throws {DatasetError} When a file is missing or malformed.
 *
 * @example
 * ```ts
 * import { loadFashionMnist } from "./idx.ts";
 * const root = await Deno.makeTempDir();
 * const images = new Uint8Array([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 42]);
 * await Deno.writeFile(`${root}/t10k-images-idx3-ubyte`, images);
 * await Deno.writeFile(`${root}/t10k-labels-idx1-ubyte`, new Uint8Array([0, 0, 8, 1, 0, 0, 0, 1, 9]));
 * const test = await loadFashionMnist({ root, train: false });
 * console.log(test.length, test.classes[9]); // 1 "Ankle boot"
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function loadFashionMnist(
  options: LoadFashionMnistOptions = {},
): Promise<IdxDataset> {
  const o = checkOptions("loadFashionMnist", options, ["root", "train", "maxBytes"]);
  const { root = "/usr/share/datasets/fashion-mnist", maxBytes } = o;
  if (typeof root !== "string") {
    throw new OptionError(`Expected root to be a folder path, got ${describeValue(root)}`);
  }
  // train: "false" would otherwise load the training split.
  const train = checkBoolean("train", o.train, { default: true });
  const prefix = train ? "train" : "t10k";
  const find = async (name: string) => {
    for (const path of [`${root}/${name}.gz`, `${root}/${name}`]) {
      if (await Deno.stat(path).then((s) => s.isFile, () => false)) return path;
    }
    throw new DatasetError(
      `Fashion-MNIST file ${name}(.gz) not found in ${root}: expected Zalando's IDX files (apt install dataset-fashion-mnist)`,
    );
  };
  return await loadIdxDataset({
    images: await find(`${prefix}-images-idx3-ubyte`),
    labels: await find(`${prefix}-labels-idx1-ubyte`),
    classes: FASHION_MNIST_CLASSES,
    ...(maxBytes === undefined ? {} : { maxBytes }),
  });
}
