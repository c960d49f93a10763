/**
 * What the command-line tools (`classify`, `train`, `evaluate`) share: the
 * error for a wrong invocation, and the entry point that prints a known error
 * as one line, without a stack trace.
 *
 * @module
 */

import { GoogLeNetError } from "../mod.ts";

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
