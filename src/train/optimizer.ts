/**
 * What every optimizer shares: the model whose trainable parameters it
 * updates, a learning rate settable between steps (a scheduler is a function
 * of the step that sets it), per-parameter state, and PyTorch-shaped
 * `stateDict()` / `loadStateDict()`. Updates run after every queued call of
 * the model and re-derive its packed weights.
 *
 * @module
 */

import { OptionError, StateDictError } from "../errors.ts";
import type { UpdateRule } from "../graph/ops.ts";
import type { GoogLeNet, Parameter } from "../model/googlenet.ts";
import { Tensor } from "../tensor.ts";
import { checkNumber, describeValue } from "../validate.ts";

/** One parameter's optimizer state: scalars and tensors, as PyTorch keeps them. */
export type ParameterState = Record<string, number | Tensor>;

/**
 * An optimizer's state as PyTorch's `state_dict()` lays it out: `state` by
 * parameter index (in the model's parameter order), and one parameter group
 * with the hyper-parameters and the indices; `names` gives each index's key.
 */
export interface OptimizerStateDict {
  /** Per-parameter state by index. */
  state: Map<number, ParameterState>;
  /** The hyper-parameters (one group: every trainable parameter). */
  paramGroups: [Record<string, number | boolean | number[]> & { params: number[] }];
  /** The state-dict key of each parameter index. */
  names: string[];
}

/**
 * Base class of {@linkcode SGD}, {@linkcode Adam} and {@linkcode AdamW}; `H`
 * is the subclass's record of hyper-parameters (replaced whole, never changed
 * in place, so a step keeps the one it was called with).
 */
export abstract class Optimizer<H = unknown> {
  /** The model whose parameters this updates. */
  readonly model: GoogLeNet;
  #lr: number;
  /** State per parameter name. */
  protected readonly state: Map<string, ParameterState> = new Map();
  /** States loaded while calls were queued, applied in queue order (what stateDict() shows). */
  #pendingStates: Map<string, ParameterState>[] = [];

  /**
   * Binds the optimizer to `model`'s trainable parameters.
   *
   * @param model The model.
   * @param lr The learning rate.
   */
  protected constructor(model: GoogLeNet, lr: unknown) {
    if (!(model && typeof model === "object" && "updateParameters" in model)) {
      throw new OptionError("An optimizer needs a GoogLeNet model as its first argument");
    }
    this.model = model;
    this.#lr = checkNumber("lr", lr, { min: 0 });
  }

  /** The learning rate; set it between steps to schedule it. */
  get lr(): number {
    return this.#lr;
  }

  set lr(value: number) {
    this.#lr = checkNumber("lr", value, { min: 0 });
  }

  /**
   * Updates every trainable parameter that has a gradient, after the model's
   * queued calls, and re-derives the model's packed weights. On the Wasm
   * backend the update runs in the kernels on every thread, with the state
   * tensors kept in the model's Wasm memory ({@linkcode GoogLeNet.stepParameters}).
   * The step uses the learning rate and hyper-parameters as they are when it
   * is called (a later `lr = ...` or `loadStateDict` applies to later steps),
   * and the state as the calls before it leave it.
   */
  step(): Promise<void> {
    const lr = this.#lr;
    const h = this.hyper();
    return this.model.stepParameters({
      owner: this,
      slots: this.slots(h),
      rule: (name, present) => this.rule(h, lr, this.#stateOf(name), present),
      take: (name, slot) => {
        const s = this.state.get(name);
        const t = s?.[slot];
        if (!(t instanceof Tensor)) return null;
        delete s![slot];
        return t.data;
      },
      give: (name, slot, data, shape) => {
        this.#stateOf(name)[slot] = new Tensor(data, shape);
      },
      update: (p) => this.update(h, p, p.grad!, lr, this.#stateOf(p.name)),
    });
  }

  /**
   * Sets the model's gradients to zero (PyTorch's `optimizer.zero_grad()`),
   * after the model's queued calls ({@linkcode GoogLeNet.zeroGrad}).
   *
   * @returns Settles when they are zeroed (never rejects; awaiting it is only needed for timing).
   */
  zeroGrad(): Promise<void> {
    return this.model.zeroGrad();
  }

  /** The hyper-parameters, for `stateDict()`. */
  protected abstract hyperParameters(): Record<string, number | boolean | number[]>;

  /** The current hyper-parameter record (a step keeps the one it was called with). */
  protected abstract hyper(): H;

  /** Updates one parameter in place with its gradient, in TypeScript. */
  protected abstract update(
    h: H,
    p: Parameter,
    grad: Float32Array,
    lr: number,
    state: ParameterState,
  ): void;

  /** The state tensors a step reads and writes per parameter (with the current hyper-parameters). */
  protected abstract slots(h: H): readonly string[];

  /**
   * The update rule of one parameter's step with its constants; counts the
   * step in `state`. `present(slot)` says whether a state tensor exists.
   */
  protected abstract rule(
    h: H,
    lr: number,
    state: ParameterState,
    present: (slot: string) => boolean,
  ): UpdateRule;

  #stateOf(name: string): ParameterState {
    let s = this.state.get(name);
    if (!s) {
      s = {};
      this.state.set(name, s);
    }
    return s;
  }

  /**
   * The optimizer's state in PyTorch's layout (copies).
   *
   * @returns Per-parameter state by index, the hyper-parameters, the names.
   */
  stateDict(): OptimizerStateDict {
    const params = this.model.parameters();
    const names = params.map((p) => p.name);
    const state = new Map<number, ParameterState>();
    // A load still queued behind the model's calls is the state from now on.
    const pending = this.#pendingStates.at(-1);
    params.forEach((p, i) => {
      const s = (pending ?? this.state).get(p.name);
      if (!s) return;
      // In PyTorch's key order; tensors from here or from the model's Wasm memory.
      const copy: ParameterState = {};
      for (const [k, kind] of this.stateKeys()) {
        const v = s[k];
        if (kind === "count") {
          if (v !== undefined) copy[k] = v;
          continue;
        }
        if (v instanceof Tensor) copy[k] = new Tensor(v.data.slice(), v.shape);
        else if (!pending) {
          const data = this.model.optimizerState(this, p.name, k);
          if (data) copy[k] = new Tensor(data, p.shape);
        }
      }
      state.set(i, copy);
    });
    return {
      state,
      paramGroups: [{ ...this.hyperParameters(), lr: this.#lr, params: names.map((_, i) => i) }],
      names,
    };
  }

  /**
   * Restores a state from {@linkcode Optimizer.stateDict} (for `--resume`):
   * all or nothing, every tensor's shape checked against its parameter, each
   * parameter's state complete (all of its keys, or none), and no
   * hyper-parameter this optimizer does not keep. It
   * is ordered like {@linkcode Optimizer.step}: the tensors are copied and the
   * learning rate and hyper-parameters set when called (steps called before
   * keep theirs), and the per-parameter state replaces the current one after
   * the steps already queued on the model, before the ones called after it
   * (`stateDict()` shows it at once).
   *
   * @throws {StateDictError} Naming what does not match.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    if (
      !sd || typeof sd !== "object" || !(sd.state instanceof Map) || !Array.isArray(sd.paramGroups)
    ) {
      throw new StateDictError("Expected an optimizer state dict { state, paramGroups, names }");
    }
    if (
      sd.paramGroups.length !== 1 || !sd.paramGroups[0] || typeof sd.paramGroups[0] !== "object"
    ) {
      throw new StateDictError(
        `Expected one parameter group (every trainable parameter), got ${sd.paramGroups.length}`,
      );
    }
    // A key this optimizer does not keep (PyTorch's "weight_decay", Adam's "amsgrad", another
    // optimizer's "momentum") would otherwise be dropped, and training go on without it.
    const group = sd.paramGroups[0];
    const known = [...Object.keys(this.hyperParameters()), "lr", "params"];
    const foreign = Object.keys(group).filter((key) => !known.includes(key));
    if (foreign.length > 0) {
      throw new StateDictError(
        `The parameter group has ${
          foreign.map((k) => `"${k}"`).join(", ")
        }: ${this.constructor.name} keeps ${known.map((k) => `"${k}"`).join(", ")}`,
      );
    }
    const params = this.model.parameters();
    const names = sd.names ?? params.map((p) => p.name);
    const allowed = this.stateKeys();
    const next = new Map<string, ParameterState>();
    for (const [index, s] of sd.state) {
      const name = names[index];
      const p = params.find((q) => q.name === name);
      if (!p) throw new StateDictError(`Optimizer state ${index} ("${name}") has no parameter`);
      if (!s || typeof s !== "object") {
        throw new StateDictError(
          `Optimizer state "${name}" must be an object of ${allowed.join(", ")}`,
        );
      }
      const copy: ParameterState = {};
      for (const [k, v] of Object.entries(s)) {
        const kind = allowed.find(([key]) => key === k)?.[1];
        if (!kind) {
          throw new StateDictError(
            `Optimizer state "${name}" has "${k}": ${this.constructor.name} keeps ${
              allowed.map(([key]) => `"${key}"`).join(", ")
            }`,
          );
        }
        if (kind === "tensor") {
          // The data read once and copied, then checked: the copy is what the state becomes.
          const data = v instanceof Tensor ? v.data : undefined;
          if (!(data instanceof Float32Array) || data.length !== p.data.length) {
            throw new StateDictError(
              `Optimizer state "${name}".${k} must be a tensor of ${p.data.length} elements`,
            );
          }
          const values = data.slice();
          if (!values.every(Number.isFinite)) {
            throw new StateDictError(`Optimizer state "${name}".${k} holds NaN or infinite values`);
          }
          copy[k] = new Tensor(values, p.shape);
        } else if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) copy[k] = v;
        else {
          throw new StateDictError(
            `Optimizer state "${name}".${k} must be a non-negative integer, got ${
              describeValue(v)
            }`,
          );
        }
      }
      // A parameter's state is all of its keys (stepped) or none (not stepped yet): Adam's moments
      // without their step count (or the count without them) would take wrong bias corrections.
      const absent = allowed.filter(([key]) => !(key in copy)).map(([key]) => `"${key}"`);
      if (absent.length > 0 && absent.length < allowed.length) {
        throw new StateDictError(
          `Optimizer state "${name}" has ${
            Object.keys(copy).map((k) => `"${k}"`).join(", ")
          } without ${absent.join(", ")}: expected all of ${
            allowed.map(([key]) => `"${key}"`).join(", ")
          } (a parameter stepped) or none (not stepped yet)`,
        );
      }
      next.set(name, copy);
    }
    // The whole group, as PyTorch restores it (checked like the constructor's options).
    const lr = group.lr === undefined ? this.lr : checkNumber("lr", group.lr, {
      min: 0,
      error: StateDictError,
    });
    this.restoreHyperParameters(group);
    this.#lr = lr;
    this.#pendingStates.push(next);
    // After the queued steps: these tensors are the state, not what the model's Wasm memory held.
    this.model.restoreOptimizerState(this, () => {
      this.state.clear();
      for (const [k, v] of this.#pendingStates.shift()!) this.state.set(k, v);
    });
  }

  /** The per-parameter state this optimizer keeps: key and kind. */
  protected abstract stateKeys(): readonly (readonly [string, "tensor" | "count"])[];

  /**
   * Checks and restores the hyper-parameters of a saved group (all or
   * nothing), as the constructor checks its options.
   *
   * @throws {StateDictError} For a value the constructor would refuse.
   */
  protected abstract restoreHyperParameters(group: Record<string, unknown>): void;
}

/** `state[key]` as a tensor shaped like `p`, created with `init` values when absent. */
export function stateTensor(
  state: ParameterState,
  key: string,
  p: Parameter,
  init?: Float32Array,
): { data: Float32Array; created: boolean } {
  const existing = state[key];
  if (existing instanceof Tensor) return { data: existing.data, created: false };
  const data = init ? new Float32Array(init) : new Float32Array(p.data.length);
  state[key] = new Tensor(data, p.shape);
  return { data, created: true };
}
