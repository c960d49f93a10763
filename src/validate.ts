/**
 * Argument and option checks for the public boundary. Each checker takes the
 * name of what it checks and the value as given (`unknown`: callers from
 * plain JavaScript pass anything), returns the value typed (or the default
 * when the value is `undefined` and a default is given) and otherwise throws
 * an {@linkcode OptionError} (or the class given as `error`) whose message
 * names the option, the value and what is allowed. Nothing is coerced:
 * `"2"` is not 2, `1.5` is not an integer, `NaN` is not a number here.
 *
 * @example
 * ```ts
 * import { checkInteger, checkOptions } from "./validate.ts";
 * const options = checkOptions("classify", { top: 3 }, ["top", "labels"]);
 * console.log(checkInteger("top", options.top, { min: 1, default: 5 })); // 3
 * ```
 *
 * @module
 */

import { type GoogLeNetError, OptionError } from "./errors.ts";

/** A `GoogLeNetError` subclass a checker throws instead of {@linkcode OptionError}. */
export type ErrorClass = new (message: string, options?: ErrorOptions) => GoogLeNetError;

/** What every checker accepts besides its own limits. */
export interface CheckOptions<T> {
  /** Returned when the value is `undefined` (absent: the value is required). */
  default?: T;
  /** The error class to throw (default {@linkcode OptionError}). */
  error?: ErrorClass;
}

/** Limits of {@linkcode checkInteger} and {@linkcode checkNumber}. */
export interface NumberRange extends CheckOptions<number> {
  /** Smallest allowed value (inclusive). */
  min?: number;
  /** Largest allowed value (inclusive). */
  max?: number;
  /** Whether the value must be larger than `min`, not equal to it (default false). */
  exclusiveMin?: boolean;
}

/**
 * Describes a value for an error message without calling anything on it:
 * strings quoted (cut at 60 characters), numbers and bigints as written
 * (`NaN`, `10n`), objects by their kind (`an array of 3 items`, `a Uint8Array`).
 *
 * @param value Anything.
 * @returns A short description.
 *
 * @example
 * ```ts
 * import { describeValue } from "./validate.ts";
 * console.log(describeValue("2"), describeValue(10n), describeValue(null)); // "2" 10n null
 * ```
 */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
    case "number":
      return Object.is(value, -0) ? "-0" : String(value);
    case "bigint":
      return `${value}n`;
    case "boolean":
    case "undefined":
      return String(value);
    case "symbol":
      return "a symbol";
    case "function":
      return "a function";
  }
  if (value === null) return "null";
  if (Array.isArray(value)) return `an array of ${value.length} items`;
  let name = "object";
  try {
    const proto = Object.getPrototypeOf(value);
    const constructor = proto === null ? undefined : Object.getOwnPropertyDescriptor(
      proto,
      "constructor",
    )?.value;
    if (typeof constructor === "function" && typeof constructor.name === "string") {
      name = constructor.name || "object";
    }
  } catch {
    // A Proxy may throw from getPrototypeOf; "an object" is description enough.
  }
  // "a Uint8Array", "a URL": U sounds like "you".
  return `${/^[AEIO]/i.test(name) ? "an" : "a"} ${name === "Object" ? "object" : name}`;
}

/**
 * Checks an options argument: `undefined` becomes `{}`, anything but a plain
 * object (null, an array, a primitive) is refused, and so is an option name
 * not in `allowedKeys` (the error lists the valid ones). Returns a shallow
 * copy, so that later changes to the caller's object do not reach a call in
 * progress.
 *
 * @param name The function whose options these are, for messages.
 * @param options The options as given.
 * @param allowedKeys Every option name the function accepts.
 * @param check The error class to throw.
 * @returns A copy of the options.
 * @throws {OptionError} When `options` is not an object or names an unknown option.
 *
 * @example
 * ```ts
 * import { checkOptions } from "./validate.ts";
 * try {
 *   checkOptions("preprocess", { size: 224 }, ["resize", "crop"]);
 * } catch (error) {
 *   console.log((error as Error).message);
 *   // Unknown option "size" of preprocess: expected one of "resize", "crop"
 * }
 * ```
 */
export function checkOptions<T extends object>(
  name: string,
  options: T | null | undefined,
  allowedKeys: readonly string[],
  check: { error?: ErrorClass } = {},
): T {
  const Fail = check.error ?? OptionError;
  if (options === undefined) return {} as T;
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new Fail(
      `Expected the options of ${name} to be an object, got ${describeValue(options)}`,
    );
  }
  let copy: T;
  try {
    copy = { ...options };
  } catch (error) {
    // A getter or a Proxy trap threw while the options were read.
    throw new Fail(
      `Cannot read the options of ${name}: ${error instanceof Error ? error.message : error}`,
      { cause: error },
    );
  }
  const unknown = Object.keys(copy).filter((key) => !allowedKeys.includes(key));
  if (unknown.length > 0) {
    const list = allowedKeys.map((k) => JSON.stringify(k)).join(", ");
    throw new Fail(
      `Unknown option${unknown.length > 1 ? "s" : ""} ${
        unknown.map((k) => JSON.stringify(k)).join(", ")
      } of ${name}: expected one of ${list}`,
    );
  }
  return copy;
}

/**
 * Checks that a value is a safe integer within a range.
 *
 * @param name The option, for messages.
 * @param value The value as given.
 * @param range `min`, `max`, `default` and the error class.
 * @returns The integer.
 * @throws {OptionError} When the value is not an integer (of type number) in range.
 *
 * @example
 * ```ts
 * import { checkInteger } from "./validate.ts";
 * console.log(checkInteger("threads", undefined, { min: 1, max: 256, default: 2 })); // 2
 * try {
 *   checkInteger("threads", 1.5, { min: 1, max: 256 });
 * } catch (error) {
 *   console.log((error as Error).message);
 *   // Expected threads to be an integer from 1 to 256, got 1.5
 * }
 * ```
 */
export function checkInteger(name: string, value: unknown, range: NumberRange = {}): number {
  if (value === undefined && "default" in range) return range.default!;
  if (!Number.isSafeInteger(value) || !inRange(value as number, range)) {
    throw new (range.error ?? OptionError)(
      `Expected ${name} to be an integer${describeRange(range)}, got ${describeValue(value)}`,
    );
  }
  return value as number;
}

/**
 * Checks that a value is a finite number within a range.
 *
 * @param name The option, for messages.
 * @param value The value as given.
 * @param range `min`, `max`, `exclusiveMin`, `default` and the error class.
 * @returns The number.
 * @throws {OptionError} When the value is not a finite number in range (NaN never is).
 *
 * @example
 * ```ts
 * import { checkNumber } from "./validate.ts";
 * console.log(checkNumber("timeout", 2.5, { min: 0, exclusiveMin: true })); // 2.5
 * ```
 */
export function checkNumber(name: string, value: unknown, range: NumberRange = {}): number {
  if (value === undefined && "default" in range) return range.default!;
  if (typeof value !== "number" || !Number.isFinite(value) || !inRange(value, range)) {
    throw new (range.error ?? OptionError)(
      `Expected ${name} to be a finite number${describeRange(range)}, got ${describeValue(value)}`,
    );
  }
  return value;
}

/**
 * Checks that a value is one of a few strings.
 *
 * @param name The option, for messages.
 * @param value The value as given.
 * @param allowed The allowed strings.
 * @param check `default` and the error class.
 * @returns The string, typed as one of `allowed`.
 * @throws {OptionError} When the value is not one of `allowed`.
 *
 * @example
 * ```ts
 * import { checkEnum } from "./validate.ts";
 * try {
 *   checkEnum("normalization", "none", ["imagenet", "half"]);
 * } catch (error) {
 *   console.log((error as Error).message);
 *   // Expected normalization to be "imagenet" or "half", got "none"
 * }
 * ```
 */
export function checkEnum<T extends string>(
  name: string,
  value: unknown,
  allowed: readonly T[],
  check: CheckOptions<T> = {},
): T {
  if (value === undefined && "default" in check) return check.default!;
  if (typeof value !== "string" || !allowed.includes(value as T)) {
    const quoted = allowed.map((a) => JSON.stringify(a));
    const list = quoted.length <= 2
      ? quoted.join(" or ")
      : `one of ${quoted.slice(0, -1).join(", ")} or ${quoted.at(-1)}`;
    throw new (check.error ?? OptionError)(
      `Expected ${name} to be ${list}, got ${describeValue(value)}`,
    );
  }
  return value as T;
}

/**
 * Checks that a value is `true` or `false` (not a truthy string such as `"false"`).
 *
 * @param name The option, for messages.
 * @param value The value as given.
 * @param check `default` and the error class.
 * @returns The boolean.
 * @throws {OptionError} When the value is not a boolean.
 *
 * @example
 * ```ts
 * import { checkBoolean } from "./validate.ts";
 * console.log(checkBoolean("auxLogits", undefined, { default: true })); // true
 * ```
 */
export function checkBoolean(
  name: string,
  value: unknown,
  check: CheckOptions<boolean> = {},
): boolean {
  if (value === undefined && "default" in check) return check.default!;
  if (typeof value !== "boolean") {
    throw new (check.error ?? OptionError)(
      `Expected ${name} to be true or false, got ${describeValue(value)}`,
    );
  }
  return value;
}

/**
 * Checks that a value is an instance of one of some classes.
 *
 * @param name The option, for messages.
 * @param value The value as given.
 * @param types The allowed classes.
 * @param check `default` and the error class.
 * @returns The value, typed as an instance of the first class.
 * @throws {OptionError} When the value is an instance of none of `types`.
 *
 * @example
 * ```ts
 * import { checkInstance } from "./validate.ts";
 * const signal = checkInstance("signal", AbortSignal.timeout(1000), [AbortSignal]);
 * console.log(signal.aborted); // false
 * ```
 */
export function checkInstance<T>(
  name: string,
  value: unknown,
  types: readonly { readonly prototype: T; readonly name: string }[],
  check: CheckOptions<T> = {},
): T {
  if (value === undefined && "default" in check) return check.default!;
  // Classes with private constructors (GoogLeNet) are classes all the same.
  if (!types.some((type) => value instanceof (type as unknown as typeof Object))) {
    const names = types.map((t) => t.name);
    throw new (check.error ?? OptionError)(
      `Expected ${name} to be ${names.length > 1 ? "one of " : "a "}${names.join(", ")}, got ${
        describeValue(value)
      }`,
    );
  }
  return value as T;
}

function inRange(value: number, { min, max, exclusiveMin }: NumberRange): boolean {
  if (min !== undefined && (exclusiveMin ? value <= min : value < min)) return false;
  return max === undefined || value <= max;
}

function describeRange({ min, max, exclusiveMin }: NumberRange): string {
  if (min !== undefined && max !== undefined && !exclusiveMin) return ` from ${min} to ${max}`;
  const parts = [];
  if (min !== undefined) parts.push(`${exclusiveMin ? ">" : ">="} ${min}`);
  if (max !== undefined) parts.push(`<= ${max}`);
  return parts.length ? ` ${parts.join(" and ")}` : "";
}
