/**
 * The JSON record a bench run leaves behind (`bench/results/latest.json`),
 * from which `tools/readme_tables.ts` renders the README's tables: each bench
 * file writes its own section (`"inference"`, `"training"`) with the host, the
 * date, the commit, the load average and every row, and leaves the others'
 * sections as they were. `BENCH_RECORD=path` writes elsewhere; `BENCH_RECORD=`
 * (empty) writes nothing.
 *
 * @module
 */

/** Where the machine and the code stood when a section was measured. */
export interface RunInfo {
  /**
   * CPU model and vendor (from /proc/cpuinfo), its caches (sysfs: "L1d 48K,
   * L2 2048K, ..."), cores seen by the runtime, OS. Figures from different
   * vendors (AMD and Intel hosts both come up) are not comparable.
   */
  host: {
    cpu: string;
    vendor?: string;
    caches?: string;
    cores: number;
    os: string;
    deno: string;
  };
  /** ISO time the section was written. */
  date: string;
  /** `git rev-parse --short HEAD`, with `+dirty` when tracked files differ from it. */
  commit: string;
  /** 1, 5 and 15 minute load averages when the section started and when it ended. */
  loadAverage: { start: number[]; end: number[] };
}

/** The default record path. */
export const RECORD_PATH: string = new URL("./results/latest.json", import.meta.url).pathname;

/** The CPU model, from /proc/cpuinfo (Linux) or `sysctl` (macOS); "unknown" elsewhere. */
export async function cpuModel(): Promise<string> {
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    const line = info.split("\n").find((l) => /^model name\s*:/.test(l));
    if (line) return line.split(":")[1].trim();
  } catch { /* not Linux */ }
  try {
    const { stdout } = await new Deno.Command("sysctl", {
      args: ["-n", "machdep.cpu.brand_string"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(stdout).trim();
    if (text) return text;
  } catch { /* no sysctl */ }
  return "unknown";
}

/** The CPU vendor ("GenuineIntel", "AuthenticAMD"), from /proc/cpuinfo; "unknown" elsewhere. */
export async function cpuVendor(): Promise<string> {
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    const line = info.split("\n").find((l) => /^vendor_id\s*:/.test(l));
    if (line) return line.split(":")[1].trim();
  } catch { /* not Linux */ }
  return "unknown";
}

/** CPU 0's caches from sysfs, as "L1d 48K, L1i 64K, L2 2048K, L3 491520K"; "unknown" elsewhere. */
export async function cpuCaches(): Promise<string> {
  const caches: string[] = [];
  try {
    for (let i = 0; i < 8; i++) {
      const dir = `/sys/devices/system/cpu/cpu0/cache/index${i}`;
      const read = async (f: string) => (await Deno.readTextFile(`${dir}/${f}`)).trim();
      let level: string;
      try {
        level = await read("level");
      } catch {
        break;
      }
      const type = await read("type");
      const kind = type === "Data" ? "d" : type === "Instruction" ? "i" : "";
      caches.push(`L${level}${kind} ${await read("size")}`);
    }
  } catch { /* no sysfs */ }
  return caches.length ? caches.join(", ") : "unknown";
}

/** The short commit hash, `+dirty` when tracked files have changes; "unknown" outside git. */
export async function commit(): Promise<string> {
  const git = async (...args: string[]) => {
    const { stdout, success } = await new Deno.Command("git", {
      args,
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "null",
    }).output();
    return success ? new TextDecoder().decode(stdout).trim() : null;
  };
  try {
    const head = await git("rev-parse", "--short", "HEAD");
    if (head === null) return "unknown";
    const dirty = await git("status", "--porcelain", "--untracked-files=no");
    return dirty ? `${head}+dirty` : head;
  } catch {
    return "unknown";
  }
}

/** The load averages now (zeros where the runtime cannot tell). */
export function loadAverage(): number[] {
  try {
    return Deno.loadavg().map((v) => Math.round(v * 100) / 100);
  } catch {
    return [0, 0, 0];
  }
}

/**
 * The npm versions that deno.dev.jsonc (the bench's import map) pins for
 * `names` ("?" for a name it lacks).
 */
export function npmVersions(
  names: readonly string[],
  config: URL = new URL("../deno.dev.jsonc", import.meta.url),
): Record<string, string> {
  // JSONC: the file's comments are whole lines.
  const text = Deno.readTextFileSync(config).replace(/^\s*\/\/.*$/gm, "");
  const imports = (JSON.parse(text).imports ?? {}) as Record<string, string>;
  return Object.fromEntries(
    names.map((name) => [name, imports[name]?.match(/^npm:.+@([^@/]+)(\/.*)?$/)?.[1] ?? "?"]),
  );
}

/** Host, commit and the load average at the start; {@linkcode writeSection} adds the end's. */
export async function startRun(): Promise<RunInfo> {
  return {
    host: {
      cpu: await cpuModel(),
      vendor: await cpuVendor(),
      caches: await cpuCaches(),
      cores: navigator.hardwareConcurrency,
      os: `${Deno.build.os} ${Deno.osRelease()}`,
      deno: Deno.version.deno,
    },
    date: "",
    commit: await commit(),
    loadAverage: { start: loadAverage(), end: [] },
  };
}

/** One line naming the host, for every printed figure. */
export function hostLine(info: RunInfo): string {
  const vendor = info.host.vendor ? ` (${info.host.vendor}; ${info.host.caches})` : "";
  return `Host: ${info.host.cpu}${vendor}, ${info.host.cores} cores, ${info.host.os}, Deno ${info.host.deno}; ` +
    `commit ${info.commit}; load average ${info.loadAverage.start.join(" ")} at the start` +
    (info.loadAverage.end.length ? `, ${info.loadAverage.end.join(" ")} at the end` : "");
}

/**
 * Writes `section` of the record (synchronously, so that it works in an
 * `unload` handler) at `path` (default `BENCH_RECORD`, else
 * {@linkcode RECORD_PATH}), keeping the other sections. Returns the path
 * written, or null when the path is empty (`BENCH_RECORD=`).
 */
export function writeSection(
  section: string,
  info: RunInfo,
  data: Record<string, unknown>,
  path: string = Deno.env.get("BENCH_RECORD") ?? RECORD_PATH,
): string | null {
  if (path === "") return null;
  let record: Record<string, unknown> = {};
  try {
    record = JSON.parse(Deno.readTextFileSync(path));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  info.date = new Date().toISOString();
  info.loadAverage.end = loadAverage();
  record[section] = { ...info, ...data };
  Deno.mkdirSync(new URL(".", `file://${path}`).pathname, { recursive: true });
  Deno.writeTextFileSync(path, JSON.stringify(record, null, 2) + "\n");
  return path;
}
