/**
 * PyTorch checkpoints in the legacy format that `torch.save` wrote before
 * PyTorch 1.6 (and still writes with `_use_new_zipfile_serialization=False`),
 * such as torchvision's `googlenet-1378be20.pth`. One stream holds five
 * pickles and then the raw data (`torch/serialization.py`, `_legacy_save`):
 *
 * 1. the magic number `0x1950a86a20f9469cfc6c`,
 * 2. the protocol version, 1001,
 * 3. system information (`little_endian`, type sizes),
 * 4. the object, its storages as persistent ids
 *    `("storage", type, key, location, numel, view_metadata)`,
 * 5. the list of storage keys, in the order their data follows;
 *
 * then for each key an 8-byte little-endian element count and the elements.
 * The object pickle is run twice through the same allow-list interpreter as
 * the ZIP format's `data.pkl`: once with inert globals, to learn where it ends
 * and which storages it names, then, once every storage's bytes are located
 * and checked against the file, to build the tensors.
 *
 * @module
 */

import { WeightsFormatError } from "../errors.ts";
import { DTYPE_SIZE } from "./dtype.ts";
import { describePython, unpickleAt } from "./pickle.ts";
import { findStateDict, Storage, StorageType, TORCH_GLOBALS } from "./pth.ts";
import type { StateDict } from "./state_dict.ts";

/** `LONG1` of 10 bytes, `0x1950a86a20f9469cfc6c`: the first pickle's value after `PROTO`. */
const MAGIC = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const MAGIC_NUMBER = 0x1950a86a20f9469cfc6cn;
const PROTOCOL_VERSION = 1001;

/**
 * Whether `bytes` starts with the magic number of the legacy (pre-1.6)
 * `torch.save` format, pickled with any protocol from 2 to 5.
 *
 * @param bytes The file.
 * @returns `true` when the first pickle is the legacy magic number.
 *
 * @example
 * ```ts
 * import { isLegacyPth } from "./legacy.ts";
 * console.log(isLegacyPth(new Uint8Array([0x50, 0x4b, 3, 4]))); // false (a ZIP checkpoint)
 * ```
 */
export function isLegacyPth(bytes: Uint8Array): boolean {
  if (bytes.length < 2 || bytes[0] !== 0x80 || bytes[1] < 2 || bytes[1] > 5) return false;
  const at = bytes[2] === 0x95 ? 11 : 2; // Protocol 4 and 5 frame the pickle: FRAME + 8 bytes.
  return bytes.length >= at + MAGIC.length && MAGIC.every((b, i) => bytes[at + i] === b);
}

/** What a storage's persistent id says: its root storage, and the view of it a tensor uses. */
interface StorageId {
  type: StorageType;
  key: string;
  numel: number;
  view?: { key: string; offset: number; numel: number };
}

/**
 * Reads the tensors of a legacy-format PyTorch checkpoint. Nesting and a
 * `module.` prefix are unwrapped as {@linkcode readPth} does, every dtype
 * becomes float32, float32 storages are views of `bytes` (or, when the data
 * is misaligned, of one aligned copy of it), and tensors that share a storage
 * share memory. Every count and offset is checked
 * against the file before anything is allocated.
 *
 * @param bytes The whole file.
 * @returns The tensors by key, in the checkpoint's order.
 * @throws {WeightsFormatError} When the file is not a legacy checkpoint of tensors, is
 *   corrupt or truncated, is big-endian, or names a global outside the allow-list.
 *
 * @example
 * ```ts
 * import { readLegacyPth } from "./legacy.ts";
 * // torch.save({"w": torch.ones(2)}, f, _use_new_zipfile_serialization=False), by pickle:
 * const hex = "80028a0a6cfc9c46f9206aa850192e" + // the magic number
 *   "80024de9032e" + // 1001
 *   "80027d2e" + // {} (system information, shortened)
 *   "80027d58010000007763746f7263682e5f7574696c730a5f72656275696c645f74656e73" +
 *   "6f725f76320a2828580700000073746f7261676563746f7263680a466c6f617453746f72" +
 *   "6167650a580900000038363932323739333658030000006370754b024e74514b004b0285" +
 *   "4b01858963636f6c6c656374696f6e730a4f726465726564446963740a29527452732e" + // the object
 *   "80025d580900000038363932323739333661" + "2e" + // ["869227936"]
 *   "0200000000000000" + "0000803f0000803f"; // 2 elements: 1.0, 1.0
 * const file = Uint8Array.from(hex.match(/../g)!, (b) => parseInt(b, 16));
 * console.log(readLegacyPth(file).get("w")?.data); // Float32Array(2) [1, 1]
 * ```
 */
export function readLegacyPth(bytes: Uint8Array): StateDict {
  if (!isLegacyPth(bytes)) {
    throw new WeightsFormatError(
      "Not a legacy PyTorch checkpoint: expected the magic number 0x1950a86a20f9469cfc6c",
    );
  }
  const header = (at: number, source: string) =>
    unpickleAt(bytes, at, { globals: {}, source: `legacy checkpoint (${source})` });
  const magic = header(0, "magic number");
  if (magic.value !== MAGIC_NUMBER) {
    throw new WeightsFormatError(
      "Not a legacy PyTorch checkpoint: expected the magic number 0x1950a86a20f9469cfc6c",
    );
  }
  const protocol = header(magic.end, "protocol version");
  if (protocol.value !== PROTOCOL_VERSION) {
    throw new WeightsFormatError(
      `Unsupported legacy PyTorch checkpoint protocol ${String(protocol.value)}: expected ` +
        PROTOCOL_VERSION,
    );
  }
  const sysInfo = header(protocol.end, "system information");
  if (!(sysInfo.value instanceof Map) || sysInfo.value.get("little_endian") === false) {
    throw new WeightsFormatError(
      "Unsupported legacy PyTorch checkpoint: expected system information saying little_endian " +
        `True, found ${describeSysInfo(sysInfo.value)}`,
    );
  }
  const objectAt = sysInfo.end;

  // First pass: inert globals, to find the storages and the pickle's end.
  const ids = new Map<string, StorageId>();
  const object = unpickleAt(bytes, objectAt, {
    globals: inertGlobals(),
    persistentLoad: (pid) => {
      const id = parseStorageId(pid);
      const known = ids.get(id.key);
      if (known && (known.type !== id.type || known.numel !== id.numel)) {
        throw new WeightsFormatError(
          `Storage "${id.key}" is used as ${known.numel} ${known.type.dtype} and ${id.numel} ` +
            `${id.type.dtype} elements: expected one dtype and size`,
        );
      }
      ids.set(id.key, known ?? id);
      return null;
    },
    source: "legacy checkpoint (object)",
  });
  const keyList = unpickleAt(bytes, object.end, {
    globals: {},
    source: "legacy checkpoint (storage keys)",
  });
  const roots = locateStorages(bytes, keyList.value, keyList.end, ids);

  // Second pass: the same pickle, with every storage located.
  const views = new Map<string, Storage>();
  const value = unpickleAt(bytes, objectAt, {
    globals: TORCH_GLOBALS,
    persistentLoad: (pid) => {
      const id = parseStorageId(pid);
      const root = roots.get(id.key)!;
      if (!id.view) return root;
      const { key, offset, numel } = id.view;
      let view = views.get(key);
      if (!view) {
        if (offset + numel > root.numel) {
          throw new WeightsFormatError(
            `Storage view "${key}" of ${numel} elements at offset ${offset} does not fit ` +
              `storage "${id.key}" of ${root.numel} elements`,
          );
        }
        const size = DTYPE_SIZE[root.dtype];
        view = new Storage(
          key,
          root.dtype,
          numel,
          numel * size,
          () => root.read().subarray(offset * size, (offset + numel) * size),
        );
        views.set(key, view);
      }
      return view;
    },
    source: "legacy checkpoint (object)",
  }).value;
  return findStateDict(value);
}

let INERT_GLOBALS: Readonly<Record<string, unknown>> | undefined;

/**
 * The allow-list with every callable replaced by one that builds an empty
 * dict (built on first use: pth.ts and this module import each other).
 */
function inertGlobals(): Readonly<Record<string, unknown>> {
  INERT_GLOBALS ??= Object.fromEntries(
    Object.entries(TORCH_GLOBALS).map((
      [name, value],
    ) => [name, typeof value === "function" ? () => new Map() : value]),
  );
  return INERT_GLOBALS;
}

function parseStorageId(pid: unknown): StorageId {
  const invalid = () =>
    new WeightsFormatError(
      "Invalid persistent id in a legacy checkpoint: expected " +
        '("storage", type, key, location, numel, None or (view key, offset, numel))',
    );
  if (!Array.isArray(pid) || pid.length !== 6 || pid[0] !== "storage") throw invalid();
  const [, type, key, , numel, view] = pid;
  if (!(type instanceof StorageType) || typeof key !== "string" || !isCount(numel)) {
    throw invalid();
  }
  if (view === null) return { type, key, numel };
  if (
    !Array.isArray(view) || view.length !== 3 || typeof view[0] !== "string" ||
    !isCount(view[1]) || !isCount(view[2])
  ) throw invalid();
  return { type, key, numel, view: { key: view[0], offset: view[1], numel: view[2] } };
}

/**
 * Walks the data after the key list: for each key, its 8-byte element count
 * (which must match the persistent id) and its bytes, which must lie in the file.
 */
function locateStorages(
  bytes: Uint8Array,
  keys: unknown,
  start: number,
  ids: Map<string, StorageId>,
): Map<string, Storage> {
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string")) {
    throw new WeightsFormatError(
      `Invalid legacy checkpoint: expected a list of storage keys, found ${describePython(keys)}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const storages = new Map<string, Storage>();
  // The data follows pickles of any length, so float32 storages are aligned by chance (one file in
  // four). Misaligned ones would each be copied element by element: once the layout is checked,
  // the data is copied once to an 8-aligned buffer instead, of which they are views.
  let data = bytes;
  let shift = 0;
  let at = start;
  for (const key of keys as string[]) {
    const id = ids.get(key);
    if (!id) {
      throw new WeightsFormatError(
        `Invalid legacy checkpoint: storage key "${key}" is listed but no tensor uses it`,
      );
    }
    if (storages.has(key)) {
      throw new WeightsFormatError(
        `Invalid legacy checkpoint: storage key "${key}" is listed twice`,
      );
    }
    if (bytes.length - at < 8) {
      throw new WeightsFormatError(
        `Truncated legacy checkpoint: expected the element count of storage "${key}" at byte ` +
          `${at}, the file has ${bytes.length} bytes`,
      );
    }
    const count = view.getBigInt64(at, true);
    if (count !== BigInt(id.numel)) {
      throw new WeightsFormatError(
        `Invalid legacy checkpoint: storage "${key}" has ${count} elements at byte ${at}, ` +
          `its persistent id says ${id.numel}`,
      );
    }
    const size = id.numel * DTYPE_SIZE[id.type.dtype];
    const begin = at + 8;
    if (size > bytes.length - begin) {
      throw new WeightsFormatError(
        `Truncated legacy checkpoint: storage "${key}" needs ${size} bytes at byte ${begin}, ` +
          `the file has ${bytes.length - begin} left`,
      );
    }
    storages.set(
      key,
      new Storage(
        key,
        id.type.dtype,
        id.numel,
        size,
        () => data.subarray(begin - shift, begin - shift + size),
      ),
    );
    at = begin + size;
  }
  const missing = [...ids.keys()].find((key) => !storages.has(key));
  if (missing !== undefined) {
    throw new WeightsFormatError(
      `Invalid legacy checkpoint: storage "${missing}" is used by a tensor but has no data`,
    );
  }
  if ((bytes.byteOffset + start) % 8 !== 0 && keys.length > 0) {
    data = bytes.slice(start, at);
    shift = start;
  }
  return storages;
}

function describeSysInfo(value: unknown): string {
  if (!(value instanceof Map)) return describePython(value);
  return `little_endian ${String(value.get("little_endian"))}`;
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}
