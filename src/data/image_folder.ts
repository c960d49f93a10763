/**
 * torchvision's `ImageFolder`: `root/<class>/**\/<image>`, one folder per
 * class, classes sorted as Python sorts strings, files found as `os.walk`
 * finds them, decoded lazily.
 *
 * @module
 */

import { DatasetError, ImageError, OptionError } from "../errors.ts";
import { checkDecodeOptions, DECODE_OPTION_KEYS, type DecodeOptions } from "../image/decode.ts";
import { checkTimeout, readBytes } from "../read_bytes.ts";
import { checkIndex, type Dataset, decodeRaw, type RawSample, type Sample } from "./dataset.ts";
import { checkInteger, checkOptions, describeValue } from "../validate.ts";

/** torchvision's `IMG_EXTENSIONS`, matched case-insensitively. */
export const IMG_EXTENSIONS: readonly string[] = Object.freeze([
  ".jpg",
  ".jpeg",
  ".png",
  ".ppm",
  ".bmp",
  ".pgm",
  ".tif",
  ".tiff",
  ".webp",
]);

/** The extensions this library decodes (the rest of {@linkcode IMG_EXTENSIONS} is skipped and reported). */
const DECODABLE = [".jpg", ".jpeg", ".png"];

/** A file left out of a data set, and why. */
export interface SkippedFile {
  /** The file's path. */
  readonly path: string;
  /** What was wrong with it. */
  readonly reason: string;
}

/** Options of {@linkcode ImageFolder.open}. */
export interface ImageFolderOptions extends DecodeOptions {
  /** Largest number of image files to list; more is an error. @default {1_000_000} */
  maxFiles?: number;
  /** Largest image file read, in bytes; larger files are skipped. @default {67_108_864} (64 MiB) */
  maxFileBytes?: number;
  /**
   * The class list to use instead of the sorted folder names, e.g. the
   * training set's `classes` when opening a separate validation folder: every
   * class folder must be in it, and a class without a folder is an empty class.
   */
  classes?: readonly string[];
  /**
   * Longest time one image file may take to read, in ms (`Infinity` for none);
   * a file that takes longer is skipped.
   *
   * @default {30_000}
   */
  timeout?: number;
}

/** An {@linkcode ImageFolder}'s options as checked when it was opened. */
interface FolderSettings {
  readonly maxFileBytes: number;
  readonly timeout: number;
  readonly decode: Readonly<Required<DecodeOptions>>;
}

/**
 * Compares strings by Unicode code point, as Python's `sorted` does (JS's
 * default `sort` compares UTF-16 units, which orders characters above U+FFFF
 * before U+E000..U+FFFF).
 *
 * @param a A string.
 * @param b Another string.
 * @returns Negative, zero or positive, as `a` sorts before, with or after `b`.
 *
 * @example
 * ```ts
 * import { comparePython } from "./image_folder.ts";
 * console.log(["b", "B", "\u{1F600}", "\uFF21"].sort(comparePython)); // ["B", "b", "Ａ", "😀"]
 * ```
 */
export function comparePython(a: string, b: string): number {
  const x = a[Symbol.iterator]();
  const y = b[Symbol.iterator]();
  for (;;) {
    const p = x.next();
    const q = y.next();
    if (p.done || q.done) return p.done ? (q.done ? 0 : -1) : 1;
    const d = p.value.codePointAt(0)! - q.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/**
 * Images in class folders, like `torchvision.datasets.ImageFolder`:
 *
 * - classes are the sub-folders of `root` (symbolic links followed), sorted
 *   as Python sorts strings; `classToIdx` maps each to its index;
 * - samples are the files under each class folder, sub-folders included
 *   (`os.walk` order: folders sorted by path, files by name), whose names end
 *   in one of {@linkcode IMG_EXTENSIONS} (any case); other files are ignored;
 * - files torchvision would list but this library cannot decode (BMP, TIFF,
 *   WebP, PPM/PGM) are left out and listed in `skipped`; corrupt or
 *   unreadable images are found when decoded (`get` throws an `ImageError`
 *   naming the file; the loader skips and reports them);
 * - a class folder without images stays a class (its index is kept, as
 *   torchvision 0.17's `allow_empty=True`) and is named in `emptyClasses`; no
 *   image at all is a `DatasetError`;
 * - a single class is allowed, as in torchvision, with a warning;
 * - class folders whose names differ only in case (`Cat`, `cat`) are a
 *   `DatasetError`: they would be one class on a case-insensitive disk.
 *
 * @example
 * ```ts
 * import { ImageFolder } from "./image_folder.ts";
 * const root = await Deno.makeTempDir();
 * for (const name of ["dog", "cat"]) {
 *   await Deno.mkdir(`${root}/${name}`);
 *   await Deno.copyFile("tests/fixtures/images/coffee_rgb.png", `${root}/${name}/a.png`);
 * }
 * const folder = await ImageFolder.open(root);
 * console.log(folder.classes, folder.classToIdx.dog, folder.length); // ["cat", "dog"] 1 2
 * console.log((await folder.get(1)).image.width); // 300
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export class ImageFolder implements Dataset {
  /** The root folder. */
  readonly root: string;
  /** Class names, sorted. */
  readonly classes: readonly string[];
  /** Class name to index. */
  readonly classToIdx: Readonly<Record<string, number>>;
  /** `[path, classIndex]` per sample, in torchvision's order. */
  readonly samples: readonly (readonly [string, number])[];
  /** Classes whose folders hold no image. */
  readonly emptyClasses: readonly string[];
  /** Image files left out when listing (formats this library does not decode). */
  readonly skipped: readonly SkippedFile[];
  /** Things worth telling the user (empty classes, a single class, skipped files). */
  readonly warnings: readonly string[];
  readonly #options: FolderSettings;

  private constructor(
    root: string,
    classes: string[],
    samples: [string, number][],
    skipped: SkippedFile[],
    options: FolderSettings,
  ) {
    this.root = root;
    this.classes = Object.freeze(classes);
    this.classToIdx = Object.freeze(Object.fromEntries(classes.map((c, i) => [c, i])));
    this.samples = Object.freeze(samples.map((s) => Object.freeze(s)));
    const counts = new Array(classes.length).fill(0);
    for (const [, label] of samples) counts[label]++;
    this.emptyClasses = Object.freeze(classes.filter((_, i) => counts[i] === 0));
    this.skipped = Object.freeze(skipped);
    this.#options = options;
    const warnings: string[] = [];
    if (this.emptyClasses.length > 0) {
      warnings.push(
        `${this.emptyClasses.length} class folder(s) without images (kept as classes): ${
          this.emptyClasses.join(", ")
        }`,
      );
    }
    if (classes.length === 1) {
      warnings.push(`Only one class (${classes[0]}): a classifier has nothing to tell apart`);
    }
    if (skipped.length > 0) {
      warnings.push(
        `${skipped.length} file(s) skipped: ${
          skipped.slice(0, 5).map((s) => `${s.path} (${s.reason})`).join(", ")
        }${skipped.length > 5 ? ", ..." : ""}`,
      );
    }
    this.warnings = Object.freeze(warnings);
  }

  /**
   * Lists `root`'s class folders and their images (nothing is decoded yet).
   *
   * @param root The folder that holds one sub-folder per class.
   * @param options File-count and file-size budgets, decoding limits.
   * @returns The data set.
   * @throws {DatasetError} When `root` cannot be read, has no class folder,
   * no image at all, more than `maxFiles` images, or class names that differ only in case.
   * @throws {OptionError} When `root` is not a path, or an option is unknown or invalid
   * (the decoding limits too: they are checked here, not at the first decode).
   */
  static async open(root: string, options: ImageFolderOptions = {}): Promise<ImageFolder> {
    if (typeof root !== "string" || root === "") {
      throw new OptionError(`Expected root to be a folder path, got ${describeValue(root)}`);
    }
    // Checked and copied once: every later read and decode uses these, whatever becomes of
    // the caller's object (a budget raised or made NaN there no longer reaches the reads).
    const o = checkOptions("ImageFolder.open", options, [
      "maxFiles",
      "maxFileBytes",
      "classes",
      "timeout",
      ...DECODE_OPTION_KEYS,
    ]);
    const maxFiles = checkInteger("maxFiles", o.maxFiles, { min: 1, default: 1_000_000 });
    const settings: FolderSettings = Object.freeze({
      maxFileBytes: checkInteger("maxFileBytes", o.maxFileBytes, {
        min: 1,
        default: 64 * 1024 * 1024,
      }),
      timeout: checkTimeout(o.timeout, 30_000),
      decode: Object.freeze(checkDecodeOptions(o)),
    });
    const base = root.replace(/(.)\/+$/, "$1");
    let entries: string[];
    try {
      entries = await subfolders(base);
    } catch (error) {
      throw new DatasetError(`Cannot read image folder ${root}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    let classes = entries.sort(comparePython);
    if (o.classes !== undefined) {
      const given = Array.isArray(o.classes) ? [...o.classes] : [];
      if (
        given.length === 0 || new Set(given).size !== given.length ||
        !given.every((name) => typeof name === "string" && name !== "")
      ) {
        throw new OptionError(
          `Expected classes to be distinct names, got ${JSON.stringify(o.classes)}`,
        );
      }
      const extra = classes.filter((name) => !given.includes(name));
      if (extra.length > 0) {
        throw new DatasetError(
          `${root} has class folder(s) ${
            extra.join(", ")
          } not among the ${given.length} given classes (${given.join(", ")}): expected only those`,
        );
      }
      classes = given;
    }
    if (classes.length === 0) {
      throw new DatasetError(
        `No class folder in ${root}: expected one sub-folder per class (${root}/<class>/<image>)`,
      );
    }
    const byLower = new Map<string, string[]>();
    for (const name of classes) {
      const key = name.normalize("NFC").toLowerCase();
      byLower.set(key, [...(byLower.get(key) ?? []), name]);
    }
    const clashes = [...byLower.values()].filter((names) => names.length > 1);
    if (clashes.length > 0) {
      throw new DatasetError(
        `Class folders in ${root} differ only in case: ${
          clashes.map((names) => names.join(" and ")).join("; ")
        }: expected distinct names (merge or rename them)`,
      );
    }
    const samples: [string, number][] = [];
    const skipped: SkippedFile[] = [];
    for (const [label, name] of classes.entries()) {
      for (const path of await walk(`${base}/${name}`)) {
        const lower = path.toLowerCase();
        if (!IMG_EXTENSIONS.some((ext) => lower.endsWith(ext))) continue;
        if (!DECODABLE.some((ext) => lower.endsWith(ext))) {
          skipped.push({ path, reason: "format not decoded here (expected PNG or JPEG)" });
          continue;
        }
        if (samples.length === maxFiles) {
          throw new DatasetError(
            `${root} holds more than ${maxFiles} images: expected at most maxFiles (${maxFiles})`,
          );
        }
        samples.push([path, label]);
      }
    }
    if (samples.length === 0) {
      throw new DatasetError(
        `No image in the ${classes.length} class folder(s) of ${root}: expected files ending in ${
          DECODABLE.join(", ")
        }`,
      );
    }
    return new ImageFolder(base, classes, samples, skipped, settings);
  }

  /** Number of samples. */
  get length(): number {
    return this.samples.length;
  }

  /** Class index per sample, as torchvision's `targets`. */
  get targets(): number[] {
    return this.samples.map(([, label]) => label);
  }

  /**
   * The path of sample `index`.
   *
   * @param index From 0 to `length - 1`.
   * @returns The file path.
   * @throws {OptionError} When `index` is out of range.
   */
  name(index: number): string {
    checkIndex(index, this.length);
    return this.samples[index][0];
  }

  /**
   * Reads (does not decode) sample `index`.
   *
   * @param index From 0 to `length - 1`.
   * @returns The file's bytes with its label and path.
   * @throws {ImageError} When the file is not a regular file, cannot be read, is over
   * `maxFileBytes` or takes longer than `timeout` to read.
   * @throws {OptionError} When `index` is out of range.
   */
  async raw(index: number): Promise<RawSample> {
    checkIndex(index, this.length);
    const [path, label] = this.samples[index];
    const { maxFileBytes, timeout } = this.#options;
    let bytes: Uint8Array;
    try {
      // Only regular files are opened: a FIFO would block the open itself, and
      // a device (/dev/zero) reports size 0 and never ends.
      const info = await Deno.stat(path);
      if (!info.isFile) throw new Error(`not a regular file (${fileKind(info)})`);
      if (info.size > maxFileBytes) {
        throw new Error(`${info.size} bytes, over maxFileBytes (${maxFileBytes})`);
      }
      // The file may change between stat and read: readBytes counts maxFileBytes
      // while reading and gives up after timeout.
      bytes = await readBytes(path, {
        maxBytes: maxFileBytes,
        timeout,
        error: ImageError,
        what: "image",
      });
    } catch (error) {
      throw new ImageError(`Cannot read image ${path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    return { source: bytes, label, name: path };
  }

  /**
   * Reads and decodes sample `index`.
   *
   * @param index From 0 to `length - 1`.
   * @returns The RGB image and its label.
   * @throws {ImageError} When the file cannot be read or decoded; the message names the file.
   * @throws {OptionError} When `index` is out of range.
   */
  async get(index: number): Promise<Sample> {
    const raw = await this.raw(index);
    try {
      return { image: decodeRaw(raw, this.#options.decode), label: raw.label };
    } catch (error) {
      throw new ImageError(`Cannot decode image ${raw.name}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
}

/** What kind of non-regular file `info` describes, for messages. */
function fileKind(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a directory";
  if (info.isFifo) return "a FIFO";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isSocket) return "a socket";
  return "another kind of file";
}

/** Names of the folders in `dir` (symbolic links to folders included). */
async function subfolders(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (await isFolder(dir, entry)) names.push(entry.name);
  }
  return names;
}

async function isFolder(dir: string, entry: Deno.DirEntry): Promise<boolean> {
  if (entry.isDirectory) return true;
  if (!entry.isSymlink) return false;
  try {
    return (await Deno.stat(`${dir}/${entry.name}`)).isDirectory;
  } catch {
    return false; // a dangling link
  }
}

/**
 * Every file under `dir` in the order of Python's
 * `for root, _, names in sorted(os.walk(dir, followlinks=True)): for name in sorted(names)`;
 * a folder reached twice through links is walked once.
 */
async function walk(dir: string): Promise<string[]> {
  const folders: [string, string[]][] = [];
  const seen = new Set<string>();
  const visit = async (path: string) => {
    let real: string;
    try {
      real = await Deno.realPath(path);
    } catch {
      return;
    }
    if (seen.has(real)) return;
    seen.add(real);
    const files: string[] = [];
    const subs: string[] = [];
    try {
      for await (const entry of Deno.readDir(path)) {
        if (await isFolder(path, entry)) subs.push(entry.name);
        else files.push(entry.name);
      }
    } catch {
      return; // unreadable folder: os.walk skips it too
    }
    folders.push([path, files.sort(comparePython)]);
    for (const sub of subs.sort(comparePython)) await visit(`${path}/${sub}`);
  };
  await visit(dir);
  folders.sort((a, b) => comparePython(a[0], b[0]));
  return folders.flatMap(([root, files]) => files.map((name) => `${root}/${name}`));
}
