/**
 * PyTorch checkpoints as `torch.save` writes them since 1.6: a ZIP archive
 * whose entries all sit in one folder `<name>/`: `data.pkl` (the pickled
 * object, tensors as `_rebuild_tensor_v2` calls on persistent storage ids),
 * `data/<key>` (each storage's raw little-endian bytes), `byteorder` and
 * `version`.
 *
 * @module
 */

import { WeightsFormatError } from "../errors.ts";
import { checkInstance, checkOptions, describeValue } from "../validate.ts";
import { Tensor } from "../tensor.ts";
import { decodeElements, type DType, DTYPE_SIZE } from "./dtype.ts";
import { describePython, PickleEncoder, unpickle } from "./pickle.ts";
import { checkStateDict, type StateDict } from "./state_dict.ts";
import { isZip, readZipDirectory, readZipEntry, writeZip, type ZipEntry } from "./zip.ts";
import { isLegacyPth, readLegacyPth } from "./legacy.ts";

/** Options of {@linkcode writePth}. */
export interface WritePthOptions {
  /** The archive's folder name (default `"archive"`, as `torch.save` names it). */
  name?: string;
}

/** Keys under which training checkpoints nest the model's state dict, tried in order. */
const NESTED_STATE_DICT_KEYS = ["state_dict", "model_state_dict", "model", "module", "net"];
const MAX_NESTING = 4;
const RESAVE_HINT = 'with PyTorch >= 1.6: torch.save(model.state_dict(), "x.pth")';

/**
 * Whether `bytes` starts like a pickle stream (protocol 2 to 5), as the
 * legacy pre-1.6 `torch.save` format does.
 *
 * @param bytes The file.
 * @returns `true` when the first opcode is `PROTO 2..5`.
 *
 * @example
 * ```ts
 * import { isPickle } from "./pth.ts";
 * console.log(isPickle(new Uint8Array([0x80, 2, 0x4e, 0x2e]))); // true
 * ```
 */
export function isPickle(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] >= 2 && bytes[1] <= 5;
}

/**
 * Reads a PyTorch checkpoint's tensors, from the ZIP format `torch.save` writes
 * since PyTorch 1.6 or the legacy format before it (see `legacy.ts`), such as
 * torchvision's `googlenet-1378be20.pth`. Training checkpoints that nest the
 * state dict under `state_dict`, `model_state_dict`, `model`, `module` or
 * `net` are unwrapped, and a `module.` prefix common to every key
 * (`nn.DataParallel`) is removed. Every dtype becomes float32; contiguous,
 * aligned float32 storages become views of `bytes`, and tensors sharing a
 * storage share memory as in PyTorch.
 *
 * @param bytes The whole `.pth` / `.pt` / `.bin` file.
 * @returns The tensors by key, in the checkpoint's order.
 * @throws {WeightsFormatError} When the file is not a PyTorch checkpoint of tensors, is
 *   corrupt, names a global outside the allow-list, or is a TorchScript archive, or would make
 *   more tensor data than 8 times its size (a decompression bomb).
 * @throws {OptionError} When `bytes` is not a `Uint8Array`.
 *
 * @example
 * ```ts
 * import { readPth, writePth } from "./pth.ts";
 * import { Tensor } from "../tensor.ts";
 * const file = writePth(new Map([["fc.bias", Tensor.zeros([3])]]));
 * console.log(readPth(file).get("fc.bias")?.shape); // [3]
 * ```
 */
export function readPth(bytes: Uint8Array): StateDict {
  checkInstance("bytes", bytes, [Uint8Array]);
  const previous = budget;
  budget = { left: MATERIALISE_FACTOR * bytes.length + MATERIALISE_SLACK, file: bytes.length };
  try {
    return readAnyPth(bytes);
  } catch (error) {
    // Any recursion over a hostile structure that escaped a depth limit is still the file's fault.
    if (error instanceof RangeError && /call stack/i.test(error.message)) {
      throw new WeightsFormatError(
        "Invalid PyTorch checkpoint: a structure nested too deeply to process",
        { cause: error },
      );
    }
    throw error;
  } finally {
    budget = previous;
  }
}

function readAnyPth(bytes: Uint8Array): StateDict {
  if (!isZip(bytes)) {
    if (isLegacyPth(bytes)) return readLegacyPth(bytes);
    throw new WeightsFormatError(
      "Not a PyTorch checkpoint: expected a ZIP archive as torch.save writes since PyTorch 1.6, " +
        "or the legacy format before it",
    );
  }
  const entries = readZipDirectory(bytes);
  // Storages may be deflated: their declared sizes (each checked against deflate's ratio, and
  // entries may not share bytes) are what the tensors can be made of.
  let declared = 0;
  for (const entry of entries.values()) declared += entry.size;
  budget!.left += MATERIALISE_FACTOR * Math.max(0, declared - bytes.length);
  const folder = archiveFolder(entries);
  if (
    entries.has(`${folder}constants.pkl`) ||
    [...entries.keys()].some((n) => n.startsWith(`${folder}code/`))
  ) {
    throw new WeightsFormatError(
      `TorchScript archive (torch.jit.save) is not supported: save the weights ${RESAVE_HINT}`,
    );
  }
  const record = (name: string) => entries.get(folder + name);
  const byteorder = record("byteorder");
  if (byteorder && new TextDecoder().decode(readZipEntry(bytes, byteorder)) !== "little") {
    throw new WeightsFormatError(
      'Unsupported PyTorch checkpoint byte order: expected "little"',
    );
  }
  const pickle = record("data.pkl");
  if (!pickle) {
    throw new WeightsFormatError(
      `Not a PyTorch checkpoint: the archive has no "${folder}data.pkl"`,
    );
  }
  // A deflated data.pkl may claim up to 1032 x its bytes, and each of a pickle's objects costs
  // heap per byte: a pickle is never much larger than the file it came in.
  const pickleBytes = readZipEntry(bytes, pickle, {
    maxSize: MATERIALISE_FACTOR * bytes.length + MATERIALISE_SLACK,
  });
  const value = unpickle(pickleBytes, {
    globals: TORCH_GLOBALS,
    persistentLoad: storageResolver(bytes, folder, entries),
    source: "data.pkl",
  });
  return findStateDict(value, 0);
}

/**
 * Writes tensors as a PyTorch checkpoint that `torch.load` (1.6 and later)
 * reads as an `OrderedDict` of float32 tensors: stored entries, data aligned
 * to 64 bytes, a protocol-2 pickle.
 *
 * @param tensors The tensors by key.
 * @param options The archive's folder name.
 * @returns The `.pth` file.
 * @throws {WeightsFormatError} When `name` is empty or contains `/`, or the file would exceed 4 GiB.
 * @throws {OptionError} When `tensors` is not a Map of Tensors or an option is unknown.
 *
 * @example
 * ```ts
 * import { writePth } from "./pth.ts";
 * import { Tensor } from "../tensor.ts";
 * const file = writePth(new Map([["w", Tensor.zeros([2, 2])]]));
 * console.log(new TextDecoder().decode(file.subarray(30, 46))); // "archive/data.pkl"
 * ```
 */
export function writePth(
  tensors: StateDict,
  options: WritePthOptions = {},
): Uint8Array<ArrayBuffer> {
  checkStateDict(tensors);
  const checked = checkOptions("writePth", options, ["name"]);
  const name = checked.name ?? "archive";
  if (typeof name !== "string" || name === "" || name.includes("/")) {
    throw new WeightsFormatError(
      `Invalid archive name ${describeValue(name)}: expected a non-empty string without "/"`,
    );
  }
  // Memo slots: 0 OrderedDict, 1 _rebuild_tensor_v2, 2 FloatStorage.
  const pickle = new PickleEncoder().proto().global("collections", "OrderedDict").put(0)
    .tuple(() => {}).reduce().mark();
  const records: { name: string; data: Uint8Array }[] = [];
  let index = 0;
  for (const [key, tensor] of tensors) {
    const storageKey = String(index);
    pickle.string(key);
    if (index === 0) pickle.global("torch._utils", "_rebuild_tensor_v2").put(1);
    else pickle.get(1);
    pickle.tuple((p) => {
      p.tuple((pid) => {
        pid.string("storage");
        if (index === 0) pid.global("torch", "FloatStorage").put(2);
        else pid.get(2);
        pid.string(storageKey).string("cpu").int(tensor.size);
      }).persistentId();
      p.int(0);
      p.tuple((shape) => tensor.shape.forEach((d) => shape.int(d)));
      p.tuple((stride) => contiguousStrides(tensor.shape).forEach((s) => stride.int(s)));
      p.false().get(0).tuple(() => {}).reduce();
    }).reduce();
    const data = tensor.data;
    records.push({
      name: `${name}/data/${storageKey}`,
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    index++;
  }
  pickle.setItems().stop();
  const encoder = new TextEncoder();
  return writeZip([
    { name: `${name}/data.pkl`, data: pickle.finish() },
    { name: `${name}/byteorder`, data: encoder.encode("little") },
    ...records,
    { name: `${name}/version`, data: encoder.encode("3\n") },
  ]);
}

/**
 * The persistent-id resolver of `data.pkl`: `("storage", type, key, location,
 * numel)` → the `data/<key>` record, one {@linkcode Storage} per key.
 */
function storageResolver(
  bytes: Uint8Array,
  folder: string,
  entries: Map<string, ZipEntry>,
): (pid: unknown) => Storage {
  const storages = new Map<string, Storage>();
  return (pid) => {
    if (
      !Array.isArray(pid) || pid.length !== 5 || pid[0] !== "storage" ||
      !(pid[1] instanceof StorageType) || typeof pid[2] !== "string" || !isCount(pid[4])
    ) {
      throw new WeightsFormatError(
        'Invalid persistent id in data.pkl: expected ("storage", type, key, location, numel)',
      );
    }
    const [, type, key, , numel] = pid as [string, StorageType, string, string, number];
    let storage = storages.get(key);
    if (!storage) {
      const entry = entries.get(`${folder}data/${key}`);
      if (!entry) {
        throw new WeightsFormatError(`Missing storage "${folder}data/${key}" in the checkpoint`);
      }
      storage = new Storage(key, type.dtype, numel, entry.size, () => readZipEntry(bytes, entry));
      storages.set(key, storage);
    }
    if (storage.dtype !== type.dtype) {
      throw new WeightsFormatError(
        `Storage "${key}" is used as ${storage.dtype} and ${type.dtype}: expected one dtype`,
      );
    }
    return storage;
  };
}

/** A storage type global such as `torch.FloatStorage` (shared with `legacy.ts`). */
export class StorageType {
  constructor(readonly dtype: DType) {}
}

/**
 * One storage (a ZIP `data/<key>` record or a legacy file's storage), its
 * `size` bytes read by `read` and converted to float32 on first use (shared
 * with `legacy.ts`).
 */
export class Storage {
  #floats?: Float32Array;

  constructor(
    readonly key: string,
    readonly dtype: DType,
    readonly numel: number,
    size: number,
    readonly read: () => Uint8Array,
  ) {
    const needed = numel * DTYPE_SIZE[dtype];
    if (size !== needed) {
      throw new WeightsFormatError(
        `Storage "${key}" of ${numel} ${dtype} elements needs ${needed} bytes, ` +
          `its record has ${size}`,
      );
    }
  }

  get floats(): Float32Array {
    if (this.#floats === undefined) {
      const raw = this.read();
      // Only float32 at a 4-byte aligned offset is a view; every other dtype is a new array.
      if (this.dtype !== "F32" || raw.byteOffset % 4 !== 0) {
        materialise(this.numel * 4, `storage "${this.key}"`);
      }
      this.#floats = decodeElements(raw, this.dtype, this.numel);
    }
    return this.#floats;
  }
}

/**
 * Float32 bytes a checkpoint may make beyond views of its own bytes (dtype
 * conversions, copies of non-contiguous views), per byte of the file (or of
 * the storages' declared sizes, when deflated): a state dict's uint8 storage
 * converted (4x) and copied once as a strided view (4x) is the most a real
 * file needs, so a pickle that rebuilds one storage many times fails early.
 */
const MATERIALISE_FACTOR = 8;
const MATERIALISE_SLACK = 16 * 2 ** 20;
/** What the {@linkcode readPth} call in progress may still allocate for tensor data. */
let budget: { left: number; file: number } | undefined;

/** Charges `bytes` of new tensor data to the current read's budget, refusing past it. */
function materialise(bytes: number, what: string): void {
  if (budget === undefined) return; // Storages built outside readPth (tests) are not bounded here.
  if (bytes > budget.left) {
    throw new WeightsFormatError(
      `Checkpoint of ${budget.file} bytes makes more tensor data than it holds: ${what} needs ` +
        `${bytes} more bytes with ${Math.max(0, budget.left)} left of the budget ` +
        `(${MATERIALISE_FACTOR} x the file's bytes): refusing a possible decompression bomb`,
    );
  }
  budget.left -= bytes;
}

/** The globals a checkpoint's pickle may name (shared with `legacy.ts`). */
export const TORCH_GLOBALS: Readonly<Record<string, unknown>> = {
  "collections.OrderedDict": (items: unknown = []) => {
    if (!Array.isArray(items)) throw new WeightsFormatError("OrderedDict expects a list of pairs");
    return new Map(
      items.map((pair): [unknown, unknown] =>
        Array.isArray(pair) && pair.length === 2 ? [pair[0], pair[1]] : fail()
      ),
    );
  },
  "builtins.set": newSet,
  "__builtin__.set": newSet, // Protocol 2 names builtins as Python 2 did.
  "torch.Size": (dims: unknown) => (Array.isArray(dims) ? dims : fail()),
  "_codecs.encode": (text: unknown) =>
    typeof text === "string" ? Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff) : fail(),
  "torch._utils._rebuild_tensor_v2": rebuildTensor,
  "torch._utils._rebuild_parameter": rebuildParameter,
  "torch._utils._rebuild_parameter_with_state": rebuildParameter,
  "torch.FloatStorage": new StorageType("F32"),
  "torch.HalfStorage": new StorageType("F16"),
  "torch.BFloat16Storage": new StorageType("BF16"),
  "torch.DoubleStorage": new StorageType("F64"),
  "torch.LongStorage": new StorageType("I64"),
  "torch.IntStorage": new StorageType("I32"),
  "torch.ShortStorage": new StorageType("I16"),
  "torch.CharStorage": new StorageType("I8"),
  "torch.ByteStorage": new StorageType("U8"),
  "torch.BoolStorage": new StorageType("BOOL"),
};

function fail(): never {
  throw new WeightsFormatError("Invalid arguments to an allowed global in data.pkl");
}

function newSet(items: unknown = []): Set<unknown> {
  return new Set(Array.isArray(items) ? items : fail());
}

function rebuildParameter(data: unknown): Tensor {
  return data instanceof Tensor ? data : fail();
}

/** `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks)`. */
function rebuildTensor(storage: unknown, offset: unknown, size: unknown, stride: unknown): Tensor {
  if (
    !(storage instanceof Storage) || !isCount(offset) || !isCounts(size) || !isCounts(stride) ||
    size.length !== stride.length
  ) {
    throw new WeightsFormatError(
      "Invalid tensor in data.pkl: expected _rebuild_tensor_v2(storage, offset, size, stride, ...) " +
        "with non-negative integers",
    );
  }
  const numel = size.reduce((a, d) => a * d, 1);
  if (numel === 0) return new Tensor(new Float32Array(0), size);
  const last = size.reduce((a, d, i) => a + (d - 1) * stride[i], offset);
  const layout = `[${size.join(", ")}] (stride [${stride.join(", ")}], offset ${offset})`;
  if (last >= storage.numel) {
    throw new WeightsFormatError(
      `Tensor of shape ${layout} does not fit storage "${storage.key}" of ${storage.numel} elements`,
    );
  }
  if (numel > storage.numel) {
    throw new WeightsFormatError(
      `Tensor of shape ${layout} has more elements than its storage "${storage.key}" ` +
        `(${storage.numel}): expanded tensors are not supported, save tensor.contiguous()`,
    );
  }
  const floats = storage.floats;
  const row = contiguousStrides(size);
  if (size.every((d, i) => d === 1 || stride[i] === row[i])) {
    return new Tensor(floats.subarray(offset, offset + numel), size);
  }
  materialise(numel * 4, `a ${layout} view of storage "${storage.key}"`);
  const out = new Float32Array(numel);
  const index = new Array<number>(size.length).fill(0);
  let source = offset;
  for (let i = 0; i < numel; i++) {
    out[i] = floats[source];
    for (let d = size.length - 1; d >= 0; d--) {
      source += stride[d];
      if (++index[d] < size[d]) break;
      source -= stride[d] * size[d];
      index[d] = 0;
    }
  }
  return new Tensor(out, size);
}

function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = step;
    step *= shape[d];
  }
  return strides;
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isCounts(value: unknown): value is number[] {
  return Array.isArray(value) && value.every(isCount);
}

/** The folder every entry shares, with its trailing slash. */
function archiveFolder(entries: Map<string, ZipEntry>): string {
  const first = entries.keys().next().value ?? "";
  const folder = first.slice(0, first.indexOf("/") + 1);
  if (!folder || [...entries.keys()].some((name) => !name.startsWith(folder))) {
    throw new WeightsFormatError(
      "Not a PyTorch checkpoint: expected every ZIP entry in one folder, as torch.save writes",
    );
  }
  return folder;
}

/**
 * The state dict in an unpickled checkpoint, unwrapped and unprefixed (shared with `legacy.ts`).
 */
export function findStateDict(value: unknown, depth = 0): StateDict {
  if (!(value instanceof Map)) {
    throw new WeightsFormatError(
      `Expected the checkpoint to hold a dict of tensors, found ${describePython(value)}`,
    );
  }
  if ([...value.values()].every((v) => v instanceof Tensor)) {
    return unprefix(value as Map<unknown, Tensor>);
  }
  const key = NESTED_STATE_DICT_KEYS.find((k) => value.get(k) instanceof Map);
  if (key === undefined || depth >= MAX_NESTING) {
    const keys = [...value.keys()].slice(0, 10).map((k) =>
      typeof k === "string" ? JSON.stringify(k) : `(${describePython(k)})`
    );
    throw new WeightsFormatError(
      `No state dict in the checkpoint: expected a dict of tensors, or one under ` +
        `${NESTED_STATE_DICT_KEYS.map((k) => `"${k}"`).join(", ")}; found keys ${keys.join(", ")}`,
    );
  }
  return findStateDict(value.get(key), depth + 1);
}

/** Checks the keys are strings and removes a `module.` prefix that every key has. */
function unprefix(dict: Map<unknown, Tensor>): StateDict {
  const keys = [...dict.keys()];
  const bad = keys.find((k) => typeof k !== "string");
  if (bad !== undefined) {
    throw new WeightsFormatError(
      `State dict key ${describePython(bad)} is not a string: expected strings`,
    );
  }
  const strip = keys.length > 0 && keys.every((k) => (k as string).startsWith("module."));
  const out: StateDict = new Map();
  for (const [key, tensor] of dict) {
    out.set(strip ? (key as string).slice(7) : key as string, tensor);
  }
  return out;
}
