/**
 * A local HTTP server on 127.0.0.1 for download tests: each path serves fixed
 * bytes, or never answers ("hang") until the server closes. It counts requests
 * per path.
 */

/** A running {@linkcode serveFiles} server. */
export interface FileServer {
  /** `http://127.0.0.1:<port>`, no trailing slash. */
  readonly origin: string;
  /** Requests received, by path. */
  readonly hits: Map<string, number>;
  /** Answers the hanging requests (503) and stops the server. */
  close(): Promise<void>;
}

/** Serves `routes` (path → bytes, or `"hang"`) on a free loopback port. */
export function serveFiles(routes: Record<string, Uint8Array | "hang">): FileServer {
  const hits = new Map<string, number>();
  const release = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const path = new URL(request.url).pathname;
      hits.set(path, (hits.get(path) ?? 0) + 1);
      const body = routes[path];
      if (body === undefined) return new Response("Not Found", { status: 404 });
      if (body === "hang") {
        await release.promise;
        return new Response("Closing", { status: 503 });
      }
      return new Response(body.slice(), {
        headers: { "content-type": "application/octet-stream" },
      });
    },
  );
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    hits,
    async close() {
      release.resolve();
      await server.shutdown();
    },
  };
}

/** The hex SHA-256 of `bytes`. */
export async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}
