/**
 * Helpers of the edge tests: run a script from `tools/edge/` in a child Deno
 * with exactly the permissions a test grants (and a deadline), serve the
 * repository over loopback HTTP, and compare logits bit for bit.
 *
 * @module
 */

import { serveFolder } from "../../tools/serve.ts";
import { AssertionError } from "node:assert/strict";

/** The repository root. */
export const ROOT: URL = new URL("../../", import.meta.url);

/** A script of `tools/edge/`, as a path. */
export function edgeScript(name: string): string {
  return new URL(`tools/edge/${name}`, ROOT).pathname;
}

/** What a child run gave. */
export interface ChildResult {
  /** Exit code (null when it was killed at the deadline). */
  code: number | null;
  /** Whether the deadline killed it. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** Wall-clock milliseconds from spawn to exit. */
  ms: number;
}

/** Options of {@linkcode runDeno}. */
export interface RunDenoOptions {
  /** Bytes to pipe to the child's stdin (closed afterwards). */
  stdin?: Uint8Array;
  /** Kill the child after this many milliseconds (default 30 000). */
  timeoutMs?: number;
  /** Working directory (default: a fresh temporary directory, so no deno.json is found). */
  cwd?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/**
 * Runs `deno <args>` and waits for it to exit, killing it (SIGKILL) at the
 * deadline. `--no-prompt` is the caller's business: every edge test passes it,
 * so a missing permission fails instead of hanging on a prompt.
 */
export async function runDeno(args: string[], options: RunDenoOptions = {}): Promise<ChildResult> {
  const cwd = options.cwd ?? await Deno.makeTempDir({ prefix: "edge-cwd-" });
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: { NO_COLOR: "1", ...options.env },
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const start = performance.now();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, options.timeoutMs ?? 30_000);
  try {
    if (options.stdin) {
      const writer = child.stdin.getWriter();
      await writer.write(options.stdin).catch(() => {});
      await writer.close().catch(() => {});
    }
    const out = await child.output();
    return {
      code: timedOut ? null : out.code,
      timedOut,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
      ms: performance.now() - start,
    };
  } finally {
    clearTimeout(timer);
    if (options.cwd === undefined) await Deno.remove(cwd, { recursive: true }).catch(() => {});
  }
}

/**
 * The JSON object a `tools/edge/` script printed as its last stdout line;
 * throws with the child's stderr when it failed.
 */
export function childJson<T>(result: ChildResult, what: string): T {
  if (result.timedOut || result.code !== 0) {
    throw new AssertionError({
      message: `${what} ${
        result.timedOut ? "did not exit before its deadline" : `exited with code ${result.code}`
      }\n--- stderr ---\n${result.stderr.slice(-4000)}\n--- stdout ---\n${
        result.stdout.slice(-2000)
      }`,
    });
  }
  const lines = result.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as T;
}

/** Asserts two float32 arrays hold the same bits (NaN payloads included). */
export function assertSameBits(
  actual: ArrayLike<number>,
  expected: Float32Array,
  what: string,
): void {
  const a = Float32Array.from(actual);
  if (a.length !== expected.length) {
    throw new AssertionError({
      message: `${what}: ${a.length} values, expected ${expected.length}`,
    });
  }
  const ua = new Uint32Array(a.buffer), ue = new Uint32Array(expected.buffer, expected.byteOffset);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ue[i] && !(Number.isNaN(a[i]) && Number.isNaN(expected[i]))) {
      throw new AssertionError({
        message: `${what}: value ${i} is ${a[i]}, expected ${expected[i]} (bit for bit)`,
      });
    }
  }
}

/** A loopback HTTP server of the repository's files. */
export interface RepoServer {
  /** `http://127.0.0.1:PORT/`. */
  readonly base: string;
  /** `127.0.0.1:PORT`, for `--allow-net` and `--allow-import`. */
  readonly host: string;
  /** Paths requested so far, with the status and content type served. */
  readonly requests: { path: string; status: number; type: string }[];
  /** Stops the server and waits for it. */
  close(): Promise<void>;
}

/**
 * Serves the repository's files (and `extra` in-memory files, by path) on
 * 127.0.0.1 with a free port. Only files under the root; `..` is refused.
 */
export function serveRepo(extra: ReadonlyMap<string, Uint8Array> = new Map()): RepoServer {
  // The server the README names for URL imports (tools/serve.ts), on a free loopback port.
  const requests: RepoServer["requests"] = [];
  const { server, base } = serveFolder({
    root: ROOT.pathname,
    extra,
    onRequest: (entry) => requests.push(entry),
  });
  return {
    base,
    host: new URL(base).host,
    requests,
    close: () => server.shutdown(),
  };
}
