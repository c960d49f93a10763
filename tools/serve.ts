/**
 * A static file server for importing googlenet-wasm by URL: serves a folder
 * (this repository by default) with the content types Deno needs, `.ts` as
 * `application/typescript` and `.wasm` as `application/wasm`. Generic servers
 * often get `.ts` wrong: Python's `http.server` sends it as
 * `text/vnd.trolltech.linguist` or `video/mp2t` (from the system's MIME
 * table), which Deno refuses to import.
 *
 *   deno run --allow-net=127.0.0.1 --allow-read tools/serve.ts [--port 8000] [--host 127.0.0.1] [DIR]
 *
 * @module
 */

/** The content type of each extension served (anything else: application/octet-stream). */
export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".ts": "application/typescript",
  ".js": "application/javascript",
  ".mjs": "application/javascript",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".md": "text/markdown",
  ".safetensors": "application/octet-stream",
  ".pth": "application/octet-stream",
};

/** Options of {@linkcode serveFolder}. */
export interface ServeOptions {
  /** The folder to serve (a path ending with "/"). */
  root: string;
  /** Interface to listen on (default 127.0.0.1). */
  hostname?: string;
  /** Port (default 0: any free one). */
  port?: number;
  /** Extra files served from memory, by URL path. */
  extra?: ReadonlyMap<string, Uint8Array>;
  /** Called for every request with its path, status and content type. */
  onRequest?: (entry: { path: string; status: number; type: string }) => void;
}

/**
 * Serves `root` over HTTP (GET and HEAD, no directory listing, no `..`).
 *
 * @returns The server and its base URL.
 */
export function serveFolder(options: ServeOptions): { server: Deno.HttpServer; base: string } {
  const extra = options.extra ?? new Map();
  const respond = async (request: Request): Promise<Response> => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    const type = CONTENT_TYPES[path.slice(path.lastIndexOf("."))] ?? "application/octet-stream";
    let body: Uint8Array<ArrayBuffer> | null = null;
    const mem = extra.get(path);
    if (mem) body = new Uint8Array(mem);
    else if (
      (request.method === "GET" || request.method === "HEAD") && !path.split("/").includes("..")
    ) {
      body = await Deno.readFile(options.root + path.slice(1)).catch(() => null);
    }
    options.onRequest?.({ path, status: body ? 200 : 404, type });
    if (!body) return new Response("not found", { status: 404 });
    const headers = { "content-type": type, "content-length": `${body.length}` };
    return new Response(request.method === "HEAD" ? null : body, { headers });
  };
  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    onListen: () => {},
  }, respond);
  const host = options.hostname ?? "127.0.0.1";
  return { server, base: `http://${host}:${server.addr.port}/` };
}

if (import.meta.main) {
  const args = [...Deno.args];
  const take = (flag: string) => {
    const i = args.indexOf(flag);
    return i < 0 ? undefined : args.splice(i, 2)[1];
  };
  const port = Number(take("--port") ?? 8000);
  const hostname = take("--host") ?? "127.0.0.1";
  const dir = args[0] ?? new URL("../", import.meta.url).pathname;
  const root = dir.endsWith("/") ? dir : `${dir}/`;
  const { base } = serveFolder({ root, hostname, port });
  console.log(`Serving ${root} at ${base} (import ${base}mod.ts)`);
}
