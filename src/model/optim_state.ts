/**
 * Optimizer state in Wasm memory: the momentum buffers and Adam moments of
 * the parameters the Wasm kernels update, one region per parameter and
 * state tensor (PyTorch's layout), grown into the weight region the first
 * time an optimizer steps. One optimizer's state lives there at a time:
 * when another steps, the previous one's tensors are handed back to it
 * (copies), and a `loadStateDict` makes its tensors the source again.
 *
 * @module
 */

import type { Gather, OptimStepOp, Plan, UpdateRule } from "../graph/ops.ts";
import { RULE_FLOATS, ruleConstants } from "../backend/wasm/optim.ts";
import { weightPlan } from "../backend/repack.ts";
import type { Parameter } from "./googlenet.ts";

let optimizerInWasm = true;

/**
 * Test and bench hook: whether optimizer steps run in the Wasm kernels
 * (default) or in TypeScript (the repack stays in Wasm), for comparing the two.
 *
 * @param on `false` for the TypeScript rules.
 *
 * @example
 * ```ts
 * import { setOptimizerInWasm } from "./optim_state.ts";
 * setOptimizerInWasm(false);
 * setOptimizerInWasm(true);
 * ```
 */
export function setOptimizerInWasm(on: boolean): void {
  optimizerInWasm = on;
}

/**
 * Whether the optimizer kernels are on (see {@linkcode setOptimizerInWasm}).
 *
 * @returns The hook's state.
 *
 * @example
 * ```ts
 * import { wasmOptimizerEnabled } from "./optim_state.ts";
 * console.log(wasmOptimizerEnabled()); // true
 * ```
 */
export function wasmOptimizerEnabled(): boolean {
  return optimizerInWasm;
}

/**
 * What an optimizer asks of {@linkcode GoogLeNet.stepParameters} for one
 * step: which state tensors it keeps per parameter, and callbacks the model
 * calls while the step runs (after every call queued before it).
 */
export interface ParameterStep {
  /** Whose state the model's Wasm memory holds (one owner at a time). */
  readonly owner: object;
  /** The state tensors the rule reads and writes per parameter (`["exp_avg", "exp_avg_sq"]`). */
  readonly slots: readonly string[];
  /**
   * The rule and constants for one parameter with a gradient (called once
   * per step per parameter; Adam counts its step here). `present(slot)` says
   * whether that state tensor exists yet.
   */
  rule(name: string, present: (slot: string) => boolean): UpdateRule;
  /** The owner's state tensor held in TypeScript, moved into Wasm memory (the owner forgets it), or null. */
  take(name: string, slot: string): Float32Array | null;
  /** A state tensor handed back from Wasm memory (a copy in the parameter's layout). */
  give(name: string, slot: string, data: Float32Array, shape: readonly number[]): void;
  /** Updates a parameter the Wasm kernels do not, in TypeScript (its state stays with the owner). */
  update(p: Parameter): void;
}

/** One parameter the Wasm kernels update: where it, its gradient and its state are (floats). */
export interface WasmParameter {
  /** State-dict key. */
  readonly name: string;
  /** PyTorch's shape. */
  readonly shape: readonly number[];
  /** Offset of the values (PyTorch layout) in the weight blob. */
  readonly x: number;
  /** Offset the step writes the updated values to (the other staging region). */
  readonly xOut: number;
  /** Offset of the gradient. */
  readonly grad: number;
  /** Elements. */
  readonly size: number;
  /** Row length of `gather`. */
  readonly k: number;
  /** From PyTorch's element order to the gradient's within a row, or null when they agree. */
  readonly gather: Gather | null;
}

/**
 * The inverse of a packing row order's {@linkcode Gather} (`r -> (r % c) * a
 * + floor(r / c)`, `c * a = k`): the gather from PyTorch's element `s` of a
 * row to the backend's row `r`; null for the identity.
 *
 * @param rows The gather of `repack.ts`'s `gatherOf` (its `b` is 1).
 * @returns `{ c: a, a: c, b: 1 }`, or null when `rows` is the identity.
 *
 * @example
 * ```ts
 * import { inverseGather } from "./optim_state.ts";
 * console.log(inverseGather({ c: 3, a: 49, b: 1 })); // { c: 49, a: 3, b: 1 }
 * ```
 */
export function inverseGather(rows: Gather): Gather | null {
  if (rows.c === 1) return null;
  return { c: rows.a, a: rows.c, b: 1 };
}

/** The model's optimizer state regions and their current owner. */
export class OptimizerMemory {
  /** Float offset of each (parameter, state tensor) region, kept for the model's life. */
  readonly #offsets = new Map<string, number>();
  #owner: { request: ParameterStep; resident: Set<string> } | null = null;

  /** The plans of the last two steps (steps alternate between two staging regions). */
  #plans: Plan[] = [];

  /**
   * Regions still to be allocated for `params` x `slots`, and each
   * parameter's rule constants: their keys and sizes.
   */
  missing(params: readonly WasmParameter[], slots: readonly string[]): [string, number][] {
    const out: [string, number][] = [];
    for (const p of params) {
      for (const slot of [RULE, ...slots]) {
        const key = keyOf(p.name, slot);
        if (!this.#offsets.has(key)) out.push([key, slot === RULE ? RULE_FLOATS : p.size]);
      }
    }
    return out;
  }

  /** Places the regions of {@linkcode OptimizerMemory.missing} from float `start` (16-aligned); returns the end. */
  place(regions: readonly [string, number][], start: number): number {
    let at = start;
    for (const [key, size] of regions) {
      this.#offsets.set(key, at);
      at += Math.ceil(size / 16) * 16;
    }
    return at;
  }

  /** Floats the regions of `regions` take. */
  static floats(regions: readonly [string, number][]): number {
    return regions.reduce((sum, [, size]) => sum + Math.ceil(size / 16) * 16, 0);
  }

  /**
   * Makes `request`'s owner the one whose state the regions hold: another
   * owner's resident tensors are handed back to it first.
   */
  claim(
    request: ParameterStep,
    blob: Float32Array,
    shapes: ReadonlyMap<string, WasmParameter>,
  ): void {
    const current = this.#owner;
    if (current && current.request.owner !== request.owner) {
      for (const key of current.resident) {
        const [name, slot] = splitKey(key);
        const p = shapes.get(name);
        const at = this.#offsets.get(key)!;
        if (p) current.request.give(name, slot, blob.slice(at, at + p.size), p.shape);
      }
      this.#owner = null;
    }
    if (!this.#owner) this.#owner = { request, resident: new Set() };
    else this.#owner.request = request;
  }

  /**
   * Hands `name`'s resident state back to the owner (before a TypeScript update of it).
   */
  release(p: WasmParameter | Parameter, blob: Float32Array): void {
    const owner = this.#owner;
    if (!owner) return;
    for (const key of [...owner.resident]) {
      const [name, slot] = splitKey(key);
      if (name !== p.name) continue;
      const at = this.#offsets.get(key)!;
      const size = "size" in p ? p.size : p.data.length;
      owner.request.give(name, slot, blob.slice(at, at + size), p.shape);
      owner.resident.delete(key);
    }
  }

  /**
   * The operation that steps `p` with the claiming owner's rule: its state
   * tensors are moved in from the owner first, and count as resident from
   * now on; the rule's constants for this step are written to its region.
   */
  stepOp(p: WasmParameter, blob: Float32Array): OptimStepOp {
    const owner = this.#owner!;
    const { request, resident } = owner;
    const state = request.slots.map((slot) => {
      const key = keyOf(p.name, slot);
      const at = this.#offsets.get(key)!;
      if (!resident.has(key)) {
        const data = request.take(p.name, slot);
        if (data) {
          blob.set(data.subarray(0, p.size), at);
          resident.add(key);
        } else {
          // No state yet: the region may still hold another optimizer's (or an
          // earlier load's), which Adam's kernel would read as its moments.
          blob.fill(0, at, at + p.size);
        }
      }
      return at;
    });
    const rule = request.rule(p.name, (slot) => resident.has(keyOf(p.name, slot)));
    for (const slot of request.slots) resident.add(keyOf(p.name, slot));
    const constants = this.#offsets.get(keyOf(p.name, RULE))!;
    blob.set(ruleConstants(rule), constants);
    return {
      kind: "optim_step",
      name: p.name,
      x: p.x,
      xOut: p.xOut,
      grad: p.grad,
      size: p.size,
      k: p.k,
      gather: p.gather,
      state,
      rule: rule.kind,
      constants,
    };
  }

  /**
   * The weight plan of `ops` (from {@linkcode OptimizerMemory.stepOp}): the
   * same plan as a recent step's when its operations are the same, so that
   * the backend keeps it (a threaded one has sent it to its workers).
   *
   * @param ops One step's operations.
   * @returns The plan.
   */
  plan(ops: readonly OptimStepOp[]): Plan {
    const same = (plan: Plan) =>
      plan.ops.length === ops.length &&
      plan.ops.every((op, i) => sameStep(op as OptimStepOp, ops[i]));
    const cached = this.#plans.find(same);
    if (cached) return cached;
    const plan = weightPlan(ops);
    this.#plans = [plan, ...this.#plans.slice(0, 1)];
    return plan;
  }

  /** A copy of `owner`'s state tensor `slot` of parameter `name`, when it is resident. */
  read(
    owner: object,
    name: string,
    slot: string,
    size: number,
    blob: Float32Array,
  ): Float32Array | null {
    const current = this.#owner;
    const key = keyOf(name, slot);
    if (!current || current.request.owner !== owner || !current.resident.has(key)) return null;
    const at = this.#offsets.get(key)!;
    return blob.slice(at, at + size);
  }

  /** Whether `owner` has any state resident. */
  holds(owner: object): boolean {
    return this.#owner?.request.owner === owner && this.#owner.resident.size > 0;
  }

  /** Forgets `owner`'s resident state (its TypeScript state is the source again). */
  forget(owner: object): void {
    if (this.#owner?.request.owner === owner) this.#owner = null;
  }
}

/** The slot name of a parameter's rule constants (no state tensor's name). */
const RULE = "\n rule";

/** Whether two steps' operations are the same (their constants live at the same place). */
function sameStep(a: OptimStepOp, b: OptimStepOp): boolean {
  return a.name === b.name && a.x === b.x && a.xOut === b.xOut && a.grad === b.grad &&
    a.size === b.size && a.k === b.k && a.rule === b.rule && a.constants === b.constants &&
    a.gather?.c === b.gather?.c && a.gather?.a === b.gather?.a &&
    a.gather?.b === b.gather?.b && a.state.length === b.state.length &&
    a.state.every((at, i) => at === b.state[i]);
}

function keyOf(name: string, slot: string): string {
  return `${name}\n${slot}`;
}

function splitKey(key: string): [string, string] {
  const at = key.indexOf("\n");
  return [key.slice(0, at), key.slice(at + 1)];
}
