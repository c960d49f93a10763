/**
 * Where the edge runtimes' npm packages live for the tests: `workerd`
 * (Cloudflare's runtime; the binary comes in `@cloudflare/workerd-linux-64`)
 * and Vercel's `edge-runtime` (run by Node). `.ci/run` installs them with
 *
 * ```sh
 * npm install --prefix "$GOOGLENET_EDGE_NPM" --no-save workerd@1.20261117.1 edge-runtime@4.0.1
 * ```
 *
 * into `$GOOGLENET_EDGE_NPM`, by default `~/.cache/googlenet-wasm/edge-npm`
 * (`$XDG_CACHE_HOME` when set). Nothing here installs anything: a test whose
 * package is missing prints why and skips.
 *
 * @module
 */

/** The packages and versions the edge tests were written against. */
export const EDGE_NPM_PACKAGES: readonly string[] = ["workerd@1.20261117.1", "edge-runtime@4.0.1"];

/** The folder the packages are installed into (`--prefix` of `npm install`). */
export function edgeNpmDir(): string {
  const explicit = Deno.env.get("GOOGLENET_EDGE_NPM");
  if (explicit) return explicit;
  const cache = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`;
  return `${cache}/googlenet-wasm/edge-npm`;
}

/** The command that installs the packages, for skip messages. */
export function installCommand(): string {
  return `npm install --prefix ${edgeNpmDir()} --no-save ${EDGE_NPM_PACKAGES.join(" ")}`;
}

/** A program found, or why not. */
export type Found = { path: string; version: string } | { path: null; reason: string };

async function version(path: string, args: string[]): Promise<Found> {
  try {
    const out = await new Deno.Command(path, { args, stdout: "piped", stderr: "piped" }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    if (out.success) return { path, version: text };
    return { path: null, reason: `${path} ${args.join(" ")} exited with code ${out.code}` };
  } catch (e) {
    return { path: null, reason: `${path} cannot run (${(e as Error).message})` };
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** The `workerd` binary of `@cloudflare/workerd-linux-64` (Linux x64 only), or why not. */
export async function findWorkerd(): Promise<Found> {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    return {
      path: null,
      reason: `the test installs workerd for linux x86_64, not ${Deno.build.target}`,
    };
  }
  const path = `${edgeNpmDir()}/node_modules/@cloudflare/workerd-linux-64/bin/workerd`;
  if (!await exists(path)) {
    return { path: null, reason: `${path} is missing; install it with: ${installCommand()}` };
  }
  return await version(path, ["--version"]);
}

/** Node and the `edge-runtime` package's folder, or why not. */
export async function findEdgeRuntime(): Promise<Found & { node?: string }> {
  const dir = `${edgeNpmDir()}/node_modules/edge-runtime`;
  if (!await exists(`${dir}/package.json`)) {
    return { path: null, reason: `${dir} is missing; install it with: ${installCommand()}` };
  }
  const node = await version("node", ["--version"]);
  if (node.path === null) return { path: null, reason: `Node.js is needed: ${node.reason}` };
  const pkg = JSON.parse(await Deno.readTextFile(`${dir}/package.json`)) as { version: string };
  return { path: dir, version: pkg.version, node: node.version };
}
