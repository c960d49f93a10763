/**
 * What the command-line tools (`classify`, `train`, `evaluate`) share: the
 * error for a wrong invocation, the entry point that prints a known error
 * as one line, without a stack trace, and the bounded read of the JSON kept
 * beside a checkpoint.
 *
 * @module
 */

import { GoogLeNetError } from "../mod.ts";
import { readBytes } from "../src/read_bytes.ts";

/** A mistake in how a command was called (a flag, a path): one line, no stack trace. */
export class UsageError extends GoogLeNetError {}

/**
 * Runs a command's `main` on `Deno.args` and exits with the code it returns.
 * The library's errors and the argument parser's are printed as one line
 * (`Error: ...`), exiting with `usageCode` for a wrong invocation and 1
 * otherwise; anything else is a bug and keeps its stack trace.
 */
export async function runCommand(
  main: (args: string[]) => Promise<number>,
  usageCode: number,
): Promise<void> {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    const parse = error instanceof TypeError &&
      (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS") === true;
    if (!(error instanceof GoogLeNetError) && !parse) throw error;
    console.error(`Error: ${(error as Error).message}`);
    Deno.exit(error instanceof UsageError || parse ? usageCode : 1);
  }
}

/**
 * Reads and parses a small JSON file the commands keep beside a checkpoint
 * (`classes.json`), bounded like every read from a path: a FIFO there is
 * refused at once and a device stops at 16 MiB, instead of a read that never
 * ends.
 *
 * @param path The file.
 * @param what What it holds, for messages ("the class names next to the weights").
 * @returns The parsed JSON, or null when there is no such file.
 * @throws {UsageError} When it cannot be read or is not JSON.
 */
export async function readJsonBeside(path: string, what: string): Promise<unknown> {
  let bytes: Uint8Array;
  try {
    bytes = await readBytes(path, {
      maxBytes: 16 * 2 ** 20,
      timeout: 10_000,
      error: UsageError,
      what: "file",
      instead: "remove it or make it a regular file",
    });
  } catch (error) {
    if ((error as Error).cause instanceof Deno.errors.NotFound) return null;
    throw new UsageError(`Cannot read ${path} (${what}): ${ioReason(error as Error)}`);
  }
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new UsageError(`Cannot read ${path} (${what}): ${(error as Error).message}`);
  }
}

/**
 * The reason of an I/O error without Deno's decorations: "No such file or
 * directory" from "No such file or directory (os error 2): open '...'".
 */
export function ioReason(error: Error): string {
  return error.message.replace(/ \(os error \d+\)/, "").replace(/: [a-z]+ '.*'$/, "");
}
