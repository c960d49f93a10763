/**
 * A server process for the edge tests (workerd, or Node running
 * edge-runtime): spawned with a deadline, its output collected, its readiness
 * awaited with a timeout, its memory and CPU time read from `/proc` (Linux),
 * and always killed at the end.
 *
 * @module
 */

/** A running server. */
export interface ServerProcess {
  /** The process id. */
  readonly pid: number;
  /** `performance.now()` just before the spawn. */
  readonly spawnedAt: number;
  /** What it printed so far (stdout and stderr, interleaved by arrival). */
  output(): string;
  /** Whether it has exited, and its code. */
  exited(): { code: number } | null;
  /** Kills it (SIGKILL) and waits for the exit. Safe to call twice. */
  close(): Promise<void>;
}

/** Options of {@linkcode spawnServer}. */
export interface SpawnServerOptions {
  /** Working directory. */
  cwd?: string;
  /** Kill it after this many milliseconds whatever happens (default 120 000). */
  deadlineMs?: number;
}

/** Starts `command args`, collecting its output, killed at the deadline. */
export function spawnServer(
  command: string,
  args: string[],
  options: SpawnServerOptions = {},
): ServerProcess {
  const spawnedAt = performance.now();
  const child = new Deno.Command(command, {
    args,
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      // Keep the last 64 KiB: enough for errors, bounded whatever the child prints.
      text = (text + decoder.decode(chunk, { stream: true })).slice(-65536);
    }
  };
  const drained = Promise.all([collect(child.stdout), collect(child.stderr)]);
  let status: { code: number } | null = null;
  const done = child.status.then((s) => {
    status = { code: s.code };
  });
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  };
  const timer = setTimeout(kill, options.deadlineMs ?? 120_000);
  return {
    pid: child.pid,
    spawnedAt,
    output: () => text,
    exited: () => status,
    close: async () => {
      clearTimeout(timer);
      if (status === null) kill();
      await done;
      await drained.catch(() => {});
    },
  };
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Waits until `127.0.0.1:port` accepts a connection; throws with the
 * server's output when it exits first or `timeoutMs` passes.
 */
export async function waitForPort(
  server: ServerProcess,
  port: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (true) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch { /* not yet */ }
    const exited = server.exited();
    if (exited || performance.now() > deadline) {
      throw new Error(
        `The server ${
          exited ? `exited with code ${exited.code}` : `did not listen within ${timeoutMs} ms`
        } (port ${port}); its output:\n${server.output().slice(-4000)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Waits until the server prints a line matching `pattern`; returns the match.
 * Throws with the output when it exits first or `timeoutMs` passes.
 */
export async function waitForOutput(
  server: ServerProcess,
  pattern: RegExp,
  timeoutMs: number,
): Promise<RegExpMatchArray> {
  const deadline = performance.now() + timeoutMs;
  while (true) {
    const match = server.output().match(pattern);
    if (match) return match;
    const exited = server.exited();
    if (exited || performance.now() > deadline) {
      throw new Error(
        `The server ${
          exited
            ? `exited with code ${exited.code}`
            : `printed no ${pattern} within ${timeoutMs} ms`
        }; its output:\n${server.output().slice(-4000)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** `fetch` that gives up after `timeoutMs`. */
export async function fetchWithin(
  url: string,
  init: RequestInit,
  timeoutMs: number,
): Promise<Response> {
  return await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
}

/** Memory and CPU time of a process, from `/proc` (null elsewhere or once it has gone). */
export interface ProcessUsage {
  /** Resident set size now, bytes. */
  rss: number;
  /** Peak resident set size, bytes. */
  peakRss: number;
  /** User + system CPU time so far, milliseconds (10 ms resolution). */
  cpuMs: number;
}

/** Reads {@linkcode ProcessUsage} of `pid` from `/proc/PID/status` and `/proc/PID/stat`. */
export function processUsage(pid: number): ProcessUsage | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kib = (key: string) =>
      Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))?.[1]);
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return { rss: kib("VmRSS") * 1024, peakRss: kib("VmHWM") * 1024, cpuMs: ticks * 10 };
  } catch {
    return null;
  }
}
