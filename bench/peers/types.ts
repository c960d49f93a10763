/**
 * The interface every benchmark peer implements.
 *
 * @module
 */

import type { Tensor } from "../../src/tensor.ts";

/**
 * A third-party runtime loaded with the seed GoogLeNet and its weights.
 *
 * @example
 * ```ts
 * import type { PeerRunner } from "./types.ts";
 * import type { Tensor } from "../../src/tensor.ts";
 * async function top1(peer: PeerRunner, input: Tensor): Promise<number> {
 *   const logits = await peer.run(input);
 *   return logits.indexOf(Math.max(...logits));
 * }
 * ```
 */
export interface PeerRunner {
  /** Human-readable runtime and backend, e.g. `"onnxruntime-web wasm"`. */
  readonly name: string;
  /** Threads the runtime was asked to use for one inference. */
  readonly threads: number;
  /**
   * Runs the network.
   *
   * @param input NCHW `[N, 3, 224, 224]` float32.
   * @returns The logits, `[N, 1000]` row-major.
   */
  run(input: Tensor): Promise<Float32Array>;
  /** Frees the runtime's session, weights and workers. */
  dispose(): Promise<void>;
}

/** Options shared by the peer constructors. */
export interface PeerOptions {
  /** Threads for one inference (intra-op parallelism); default 1. */
  readonly threads?: number;
}

/**
 * A peer that cannot run here, and why (e.g. a native module that does not
 * load, no WebGPU adapter, threads the runtime cannot start under Deno).
 */
export interface PeerUnavailable {
  /** The runtime and backend, as `PeerRunner.name` would be. */
  readonly name: string;
  /** Why it cannot run. */
  readonly reason: string;
}

/**
 * Whether `peer` is a runner rather than a reason it is unavailable.
 *
 * @example
 * ```ts
 * import { isRunner, type PeerRunner, type PeerUnavailable } from "./types.ts";
 * declare const peer: PeerRunner | PeerUnavailable;
 * if (!isRunner(peer)) console.log(`${peer.name} skipped: ${peer.reason}`);
 * ```
 */
export function isRunner(peer: PeerRunner | PeerUnavailable): peer is PeerRunner {
  return "run" in peer;
}
