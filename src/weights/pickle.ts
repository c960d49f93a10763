/**
 * A restricted pickle interpreter, modelled on PyTorch's
 * `torch/_weights_only_unpickler.py`: it understands the opcodes of
 * protocols 2 to 5 that `torch.save` emits, builds plain values (numbers,
 * strings, bytes, arrays for lists and tuples, `Map`s for dicts, `Set`s) and
 * resolves globals only from an allow-list given by the caller. Nothing in a
 * file is executed. Plus a tiny protocol-2 encoder for the writer.
 *
 * Python values map to: `None` → `null`, `int` → `number` (`bigint` beyond
 * 2^53), `float` → `number`, `str` → `string`, `bytes` → `Uint8Array`,
 * `list`/`tuple` → `Array`, `dict` → `Map`, `set` → `Set`.
 *
 * @module
 */

import { WeightsFormatError } from "../errors.ts";

/** Options of {@linkcode unpickle}. */
export interface UnpickleOptions {
  /**
   * The only globals a pickle may name, by `"module.name"`. A function is
   * called by `REDUCE`/`NEWOBJ` with the argument tuple; any other value (a
   * storage type, say) is only passed around.
   */
  globals: Readonly<Record<string, unknown>>;
  /** Resolves a persistent id (`BINPERSID`); absent, persistent ids are refused. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Name of the pickle in error messages (default `"pickle"`). */
  source?: string;
}

/** Most open `MARK`s at once. */
const MAX_MARKS = 10_000;
/** Most memo entries; `torch.save` of GoogLeNet uses under a thousand. */
const MAX_MEMO = 1_000_000;
/** Longest integer literal, in bytes. */
const MAX_LONG_BYTES = 1024;
/**
 * Most objects (tuples, lists, dicts, sets, call results) one pickle may
 * make: an empty dict is one byte of pickle and about 200 bytes of heap, so
 * this bounds the heap a pickle can fill to about 100 MB. `torch.save` of a
 * state dict makes about 10 per tensor.
 */
const MAX_OBJECTS = 500_000;

/**
 * Runs a pickle with the allow-listed `globals` and returns its value.
 *
 * @param bytes The pickle stream.
 * @param options Allowed globals and the persistent-id resolver.
 * @returns The unpickled value.
 * @throws {WeightsFormatError} On a malformed stream, an unsupported opcode or a global not in `globals`.
 *
 * @example
 * ```ts
 * import { PickleEncoder, unpickle } from "./pickle.ts";
 * const bytes = new PickleEncoder().proto().string("hi").stop().finish();
 * console.log(unpickle(bytes, { globals: {} })); // "hi"
 * ```
 */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): unknown {
  return new Unpickler(bytes, options).run();
}

/**
 * Runs the pickle that starts at byte `offset` of `bytes`, for files that
 * hold several pickles back to back (the legacy `torch.save` format), and
 * says where it ended.
 *
 * @param bytes The whole stream.
 * @param offset Where the pickle starts.
 * @param options Allowed globals and the persistent-id resolver.
 * @returns The unpickled value and the offset just past its `STOP`.
 * @throws {WeightsFormatError} As {@linkcode unpickle} does; error offsets count from `bytes[0]`.
 *
 * @example
 * ```ts
 * import { PickleEncoder, unpickleAt } from "./pickle.ts";
 * const one = new PickleEncoder().proto().int(1).stop().finish();
 * const two = new PickleEncoder().proto().int(2).stop().finish();
 * const both = new Uint8Array([...one, ...two]);
 * const first = unpickleAt(both, 0, { globals: {} });
 * console.log(first, unpickleAt(both, first.end, { globals: {} }).value); // { value: 1, end: 5 } 2
 * ```
 */
export function unpickleAt(
  bytes: Uint8Array,
  offset: number,
  options: UnpickleOptions,
): { value: unknown; end: number } {
  const unpickler = new Unpickler(bytes, options, offset);
  const value = unpickler.run();
  return { value, end: unpickler.end };
}

class Unpickler {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #options: UnpickleOptions;
  readonly #source: string;
  #at = 0;
  #stack: unknown[] = [];
  readonly #marks: unknown[][] = [];
  readonly #memo = new Map<number, unknown>();
  #objects = 0;

  constructor(bytes: Uint8Array, options: UnpickleOptions, offset = 0) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#options = options;
    this.#source = options.source ?? "pickle";
    this.#at = offset;
  }

  /** The offset of the next opcode: past `STOP` once {@linkcode Unpickler.run} returned. */
  get end(): number {
    return this.#at;
  }

  run(): unknown {
    while (true) {
      const at = this.#at;
      const op = this.#u8();
      switch (op) {
        case 0x80: // PROTO
          if (this.#u8() > 5) throw this.#error(at, "unsupported protocol, expected 2 to 5");
          break;
        case 0x95: // FRAME
          this.#take(8);
          break;
        case 0x2e: // STOP
          return this.#pop(at);
        case 0x28: // MARK
          if (this.#marks.length >= MAX_MARKS) {
            throw this.#error(at, `more than ${MAX_MARKS} nested marks`);
          }
          this.#made(at);
          this.#marks.push(this.#stack);
          this.#stack = [];
          break;
        case 0x30: // POP
          this.#pop(at);
          break;
        case 0x31: // POP_MARK
          this.#popMark(at);
          break;
        case 0x32: // DUP
          this.#push(this.#peek(at));
          break;
        case 0x4e: // NONE
          this.#push(null);
          break;
        case 0x88: // NEWTRUE
          this.#push(true);
          break;
        case 0x89: // NEWFALSE
          this.#push(false);
          break;
        case 0x4a: // BININT
          this.#push(this.#view.getInt32(this.#take(4), true));
          break;
        case 0x4b: // BININT1
          this.#push(this.#u8());
          break;
        case 0x4d: // BININT2
          this.#push(this.#view.getUint16(this.#take(2), true));
          break;
        case 0x8a: // LONG1
          this.#push(this.#long(at, this.#u8()));
          break;
        case 0x8b: // LONG4
          this.#push(this.#long(at, this.#u32()));
          break;
        case 0x47: // BINFLOAT
          this.#push(this.#view.getFloat64(this.#take(8), false));
          break;
        case 0x58: // BINUNICODE
          this.#push(this.#text(this.#u32(), "utf-8"));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.#push(this.#text(this.#u8(), "utf-8"));
          break;
        case 0x8d: // BINUNICODE8
          this.#push(this.#text(this.#u64(), "utf-8"));
          break;
        case 0x54: // BINSTRING
          this.#push(this.#text(this.#u32(), "latin1"));
          break;
        case 0x55: // SHORT_BINSTRING
          this.#push(this.#text(this.#u8(), "latin1"));
          break;
        case 0x42: // BINBYTES
          this.#push(this.#bytesOf(this.#u32()));
          break;
        case 0x43: // SHORT_BINBYTES
          this.#push(this.#bytesOf(this.#u8()));
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.#push(this.#bytesOf(this.#u64()));
          break;
        case 0x29: // EMPTY_TUPLE
          this.#made(at);
          this.#push([]);
          break;
        case 0x74: // TUPLE
          this.#push(this.#popMark(at));
          break;
        case 0x85: // TUPLE1
        case 0x86: // TUPLE2
        case 0x87: { // TUPLE3
          const n = op - 0x84;
          if (this.#stack.length < n) throw this.#error(at, "stack underflow");
          this.#made(at);
          this.#push(this.#stack.splice(-n, n));
          break;
        }
        case 0x5d: // EMPTY_LIST
          this.#made(at);
          this.#push([]);
          break;
        case 0x6c: // LIST
          this.#push(this.#popMark(at));
          break;
        case 0x61: { // APPEND
          const item = this.#pop(at);
          this.#top(at, Array).push(item);
          break;
        }
        case 0x65: { // APPENDS
          const items = this.#popMark(at);
          for (const item of items) this.#top(at, Array).push(item);
          break;
        }
        case 0x7d: // EMPTY_DICT
          this.#made(at);
          this.#push(new Map());
          break;
        case 0x64: // DICT
          this.#made(at);
          this.#push(this.#setItems(at, new Map(), this.#popMark(at)));
          break;
        case 0x73: { // SETITEM
          const value = this.#pop(at);
          const key = this.#pop(at);
          this.#top(at, Map).set(key, value);
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.#popMark(at);
          this.#setItems(at, this.#top(at, Map), items);
          break;
        }
        case 0x8f: // EMPTY_SET
          this.#made(at);
          this.#push(new Set());
          break;
        case 0x90: { // ADDITEMS
          const items = this.#popMark(at);
          const set = this.#top(at, Set);
          for (const item of items) set.add(item);
          break;
        }
        case 0x91: // FROZENSET
          this.#made(at);
          this.#push(new Set(this.#popMark(at)));
          break;
        case 0x63: { // GLOBAL
          const module = this.#line(at);
          this.#push(this.#global(at, module, this.#line(at)));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.#pop(at);
          const module = this.#pop(at);
          if (typeof module !== "string" || typeof name !== "string") {
            throw this.#error(at, "STACK_GLOBAL expects two strings");
          }
          this.#push(this.#global(at, module, name));
          break;
        }
        case 0x52: // REDUCE
        case 0x81: { // NEWOBJ
          const args = this.#pop(at);
          const callable = this.#pop(at);
          if (typeof callable !== "function" || !Array.isArray(args)) {
            throw this.#error(at, "expected an allowed callable and an argument tuple");
          }
          this.#made(at);
          this.#push(this.#call(at, callable as (...args: unknown[]) => unknown, args));
          break;
        }
        case 0x62: // BUILD
          this.#pop(at); // The state: attributes such as a state dict's `_metadata`, not needed.
          this.#top(at, Map);
          break;
        case 0x71: // BINPUT
          this.#put(at, this.#u8());
          break;
        case 0x72: // LONG_BINPUT
          this.#put(at, this.#u32());
          break;
        case 0x94: // MEMOIZE
          this.#put(at, this.#memo.size);
          break;
        case 0x68: // BINGET
          this.#push(this.#get(at, this.#u8()));
          break;
        case 0x6a: // LONG_BINGET
          this.#push(this.#get(at, this.#u32()));
          break;
        case 0x51: { // BINPERSID
          const pid = this.#pop(at);
          if (!this.#options.persistentLoad) throw this.#error(at, "unexpected persistent id");
          this.#push(this.#call(at, this.#options.persistentLoad, [pid]));
          break;
        }
        default:
          throw this.#error(
            at,
            `unsupported opcode 0x${op.toString(16).padStart(2, "0")}, expected one that ` +
              "torch.save emits (protocols 2 to 5)",
          );
      }
    }
  }

  /** Counts one more object made, refusing past {@linkcode MAX_OBJECTS}. */
  #made(at: number): void {
    if (++this.#objects > MAX_OBJECTS) {
      throw this.#error(
        at,
        `more than ${MAX_OBJECTS} objects (a state dict makes about 10 per tensor), ` +
          "refusing a possible memory bomb",
      );
    }
  }

  #error(at: number, what: string): WeightsFormatError {
    return new WeightsFormatError(`Invalid ${this.#source} at byte ${at}: ${what}`);
  }

  /** Advances past `n` bytes and returns where they start. */
  #take(n: number): number {
    const at = this.#at;
    if (n > this.#bytes.length - at) {
      throw new WeightsFormatError(
        `Truncated ${this.#source}: expected ${n} more bytes at byte ${at}, ` +
          `${this.#bytes.length - at} left`,
      );
    }
    this.#at += n;
    return at;
  }

  #u8(): number {
    return this.#bytes[this.#take(1)];
  }

  #u32(): number {
    return this.#view.getUint32(this.#take(4), true);
  }

  #u64(): number {
    const value = this.#view.getBigUint64(this.#take(8), true);
    // Any length past the end fails in #take; clamp so it stays a number.
    return value > BigInt(this.#bytes.length) ? Infinity : Number(value);
  }

  #bytesOf(n: number): Uint8Array {
    const at = this.#take(n);
    return this.#bytes.slice(at, at + n);
  }

  #text(n: number, encoding: "utf-8" | "latin1"): string {
    const at = this.#take(n);
    return new TextDecoder(encoding).decode(this.#bytes.subarray(at, at + n));
  }

  #line(opAt: number): string {
    const end = this.#bytes.indexOf(0x0a, this.#at);
    if (end < 0) throw this.#error(opAt, "GLOBAL name is not terminated by a newline");
    const text = this.#text(end - this.#at, "utf-8");
    this.#take(1);
    return text.trim();
  }

  #long(at: number, n: number): number | bigint {
    if (n > MAX_LONG_BYTES) throw this.#error(at, `integer of ${n} bytes is too long`);
    const start = this.#take(n);
    let value = 0n;
    for (let i = n - 1; i >= 0; i--) value = (value << 8n) | BigInt(this.#bytes[start + i]);
    if (n > 0 && this.#bytes[start + n - 1] & 0x80) value -= 1n << BigInt(8 * n);
    const small = Number(value);
    return Number.isSafeInteger(small) ? small : value;
  }

  #push(value: unknown): void {
    this.#stack.push(value);
  }

  #pop(at: number): unknown {
    if (this.#stack.length === 0) throw this.#error(at, "stack underflow");
    return this.#stack.pop();
  }

  #peek(at: number): unknown {
    if (this.#stack.length === 0) throw this.#error(at, "stack underflow");
    return this.#stack[this.#stack.length - 1];
  }

  // deno-lint-ignore no-explicit-any
  #top<T>(at: number, type: abstract new (...args: any[]) => T): T {
    const top = this.#peek(at);
    if (!(top instanceof type)) {
      throw this.#error(at, `expected a ${type.name} on the stack, found ${describePython(top)}`);
    }
    return top;
  }

  #popMark(at: number): unknown[] {
    const items = this.#stack;
    const previous = this.#marks.pop();
    if (!previous) throw this.#error(at, "no MARK to pop to");
    this.#stack = previous;
    return items;
  }

  #setItems(at: number, map: Map<unknown, unknown>, items: unknown[]): Map<unknown, unknown> {
    if (items.length % 2) throw this.#error(at, "odd number of dict items");
    for (let i = 0; i < items.length; i += 2) map.set(items[i], items[i + 1]);
    return map;
  }

  #put(at: number, index: number): void {
    if (this.#memo.size >= MAX_MEMO && !this.#memo.has(index)) {
      throw this.#error(at, `more than ${MAX_MEMO} memo entries`);
    }
    this.#memo.set(index, this.#peek(at));
  }

  #get(at: number, index: number): unknown {
    if (!this.#memo.has(index)) throw this.#error(at, `memo entry ${index} is not defined`);
    return this.#memo.get(index);
  }

  #global(at: number, module: string, name: string): unknown {
    const qualified = `${module}.${name}`;
    if (!Object.hasOwn(this.#options.globals, qualified)) {
      throw this.#error(
        at,
        `refused global ${qualified}: nothing in a file is executed, only tensors and ` +
          "plain containers are allowed",
      );
    }
    return this.#options.globals[qualified];
  }

  #call(at: number, callable: (...args: unknown[]) => unknown, args: unknown[]): unknown {
    try {
      return callable(...args);
    } catch (error) {
      if (error instanceof WeightsFormatError) throw error;
      throw this.#error(at, (error as Error).message);
    }
  }
}

/**
 * Names the type of an unpickled value for error messages.
 *
 * @param value A value {@linkcode unpickle} returned.
 * @returns `"None"`, the `typeof`, or the class name (`Map`, `Array`, `Tensor`, ...).
 *
 * @example
 * ```ts
 * import { describePython } from "./pickle.ts";
 * console.log(describePython(null), describePython(new Map())); // "None" "Map"
 * ```
 */
export function describePython(value: unknown): string {
  if (value === null) return "None";
  if (typeof value !== "object") return typeof value;
  return value.constructor?.name ?? "object";
}

/**
 * Builds a protocol-2 pickle stream opcode by opcode.
 *
 * @example
 * ```ts
 * import { PickleEncoder } from "./pickle.ts";
 * const bytes = new PickleEncoder().proto().int(7).stop().finish();
 * console.log(bytes); // Uint8Array(5) [128, 2, 75, 7, 46]
 * ```
 */
export class PickleEncoder {
  #bytes: number[] = [];
  readonly #encoder = new TextEncoder();

  /**
   * `PROTO 2`.
   *
   * @returns This encoder.
   */
  proto(): this {
    return this.#push([0x80, 2]);
  }

  /**
   * `GLOBAL module name`.
   *
   * @param module The Python module.
   * @param name The attribute.
   * @returns This encoder.
   */
  global(module: string, name: string): this {
    return this.#push([0x63]).#push(this.#encoder.encode(`${module}\n${name}\n`));
  }

  /**
   * A `str` (`BINUNICODE`).
   *
   * @param text The string.
   * @returns This encoder.
   */
  string(text: string): this {
    const utf8 = this.#encoder.encode(text);
    return this.#push([0x58, ...le(utf8.length, 4)]).#push(utf8);
  }

  /**
   * A non-negative `int` (`BININT1`, `BININT2`, `BININT` or `LONG1`).
   *
   * @param value A non-negative safe integer.
   * @returns This encoder.
   */
  int(value: number): this {
    if (value < 0x100) return this.#push([0x4b, value]);
    if (value < 0x10000) return this.#push([0x4d, ...le(value, 2)]);
    if (value < 0x80000000) return this.#push([0x4a, ...le(value, 4)]);
    return this.#push([0x8a, 8, ...le(value, 8)]);
  }

  /**
   * `False`.
   *
   * @returns This encoder.
   */
  false(): this {
    return this.#push([0x89]);
  }

  /**
   * A tuple of the values the callback pushes (`MARK ... TUPLE`).
   *
   * @param items Pushes the items.
   * @returns This encoder.
   */
  tuple(items: (encoder: this) => void): this {
    this.#push([0x28]);
    items(this);
    return this.#push([0x74]);
  }

  /**
   * `MARK`.
   *
   * @returns This encoder.
   */
  mark(): this {
    return this.#push([0x28]);
  }

  /**
   * `REDUCE`: calls the callable below the argument tuple.
   *
   * @returns This encoder.
   */
  reduce(): this {
    return this.#push([0x52]);
  }

  /**
   * `BINPERSID`: the top of the stack is a persistent id.
   *
   * @returns This encoder.
   */
  persistentId(): this {
    return this.#push([0x51]);
  }

  /**
   * `SETITEMS`: adds the pairs since the last mark to the dict below it.
   *
   * @returns This encoder.
   */
  setItems(): this {
    return this.#push([0x75]);
  }

  /**
   * `BINPUT index`: stores the top of the stack in the memo.
   *
   * @param index Memo slot, 0 to 2^32 - 1.
   * @returns This encoder.
   */
  put(index: number): this {
    return index < 0x100 ? this.#push([0x71, index]) : this.#push([0x72, ...le(index, 4)]);
  }

  /**
   * `BINGET index`: pushes a memo entry.
   *
   * @param index Memo slot, 0 to 2^32 - 1.
   * @returns This encoder.
   */
  get(index: number): this {
    return index < 0x100 ? this.#push([0x68, index]) : this.#push([0x6a, ...le(index, 4)]);
  }

  /**
   * `STOP`.
   *
   * @returns This encoder.
   */
  stop(): this {
    return this.#push([0x2e]);
  }

  /**
   * The stream so far.
   *
   * @returns The bytes.
   */
  finish(): Uint8Array<ArrayBuffer> {
    return new Uint8Array(this.#bytes);
  }

  #push(bytes: ArrayLike<number>): this {
    for (let i = 0; i < bytes.length; i++) this.#bytes.push(bytes[i]);
    return this;
  }
}

/** `value` as `n` little-endian bytes. */
function le(value: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(Math.floor(value / 2 ** (8 * i)) & 0xff);
  return out;
}
