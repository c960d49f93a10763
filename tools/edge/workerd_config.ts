/**
 * The workerd configuration (Cap'n Proto text) of the edge worker built by
 * `tools/bundle.ts`: its three modules (`worker.js`, `googlenet.js`, and
 * `kernels.wasm` as a `wasm` module, which workerd compiles when it loads the
 * config, so the worker never compiles Wasm), a read-only disk service
 * holding the weights, bound as `WEIGHTS`, and one HTTP socket.
 *
 * ```sh
 * workerd serve config.capnp --socket-addr http=127.0.0.1:8080
 * ```
 *
 * @module
 */

/** Options of {@linkcode workerdConfig}. */
export interface WorkerdConfigOptions {
  /** Absolute path of the folder holding the weight file (served read-only). */
  weightsDir: string;
  /** The weight file's name in that folder. */
  weightsFile: string;
  /** The socket's address (default `127.0.0.1:8080`; `--socket-addr http=...` overrides it). */
  address?: string;
}

/** A capnp text literal. */
function text(value: string): string {
  return JSON.stringify(value);
}

/**
 * The config, to be written next to `worker.js`, `googlenet.js` and
 * `kernels.wasm` (they are embedded by relative path).
 */
export function workerdConfig(options: WorkerdConfigOptions): string {
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .googlenet),
    (name = "weights", disk = (path = ${text(options.weightsDir)}, writable = false)),
  ],
  sockets = [
    (name = "http", address = ${
    text(options.address ?? "127.0.0.1:8080")
  }, http = (), service = "main"),
  ],
);

const googlenet :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "googlenet.js", esModule = embed "googlenet.js"),
    (name = "kernels.wasm", wasm = embed "kernels.wasm"),
  ],
  bindings = [
    (name = "WEIGHTS", service = "weights"),
    (name = "WEIGHTS_FILE", text = ${text(options.weightsFile)}),
  ],
  compatibilityDate = "2025-01-01",
);
`;
}
