/**
 * Adam and AdamW, exactly PyTorch 1.13's `torch.optim.Adam` and
 * `torch.optim.AdamW` updates (float32 state, float64 bias corrections, as
 * their single-tensor paths compute them). Weight decay enters Adam through
 * the gradient and AdamW decoupled, before the moments:
 *
 *     Adam:  g = grad + weight_decay * p
 *     AdamW: p = p * (1 - lr * weight_decay);  g = grad
 *     m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
 *     p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *
 * @module
 */

import { OptionError, StateDictError } from "../errors.ts";
import type { AdamRule } from "../graph/ops.ts";
import type { GoogLeNet, Parameter } from "../model/googlenet.ts";
import { checkNumber, checkOptions } from "../validate.ts";
import { Optimizer, type ParameterState, stateTensor } from "./optimizer.ts";

/** Options of {@linkcode Adam} and {@linkcode AdamW}. */
export interface AdamOptions {
  /** Learning rate (default 1e-3). */
  lr?: number;
  /** Decay rates of the moment estimates (default [0.9, 0.999]). */
  betas?: readonly [number, number];
  /** Added to the denominator (default 1e-8). */
  eps?: number;
  /** Weight decay (default 0 for Adam, 1e-2 for AdamW). */
  weightDecay?: number;
}

const f = Math.fround;

/** Adam's hyper-parameters besides the learning rate, as one step uses them. */
export interface AdamHyper {
  /** Decay rates of the first and second moments. */
  readonly betas: readonly [number, number];
  /** Added to the denominator. */
  readonly eps: number;
  /** Weight decay (through the gradient for Adam, decoupled for AdamW). */
  readonly weightDecay: number;
}

/** Checks Adam's hyper-parameters (defaults for absent ones), throwing `error`. */
function adamHyper(
  o: Record<string, unknown>,
  defaultDecay: number,
  error: typeof OptionError,
): AdamHyper {
  const betas = o.betas ?? [0.9, 0.999];
  const bad = () => new error(`betas must be two numbers in [0, 1), got ${JSON.stringify(betas)}`);
  if (!Array.isArray(betas) || betas.length !== 2) throw bad();
  const pair = [
    checkNumber("betas[0]", betas[0], { min: 0, max: 1, error }),
    checkNumber("betas[1]", betas[1], { min: 0, max: 1, error }),
  ] as const;
  if (pair[0] >= 1 || pair[1] >= 1) throw bad();
  return {
    // Frozen: the `betas` getter hands this pair out, and a step called keeps this record.
    betas: Object.freeze(pair),
    eps: checkNumber("eps", o.eps, { min: 0, default: 1e-8, error }),
    weightDecay: checkNumber("weightDecay", o.weightDecay, {
      min: 0,
      default: defaultDecay,
      error,
    }),
  };
}

/**
 * PyTorch's Adam over a model's trainable parameters.
 *
 * @example
 * ```ts
 * import { Adam, GoogLeNet, Tensor } from "../../mod.ts";
 * const model = await GoogLeNet.create({ numClasses: 3, auxLogits: false, threads: 1 });
 * const opt = new Adam(model, { lr: 1e-4 });
 * await model.backward(Tensor.zeros([1, 3, 64, 64]), [0]);
 * await opt.step();
 * await model.dispose();
 * ```
 */
export class Adam extends Optimizer<AdamHyper> {
  /** Whether weight decay is decoupled (AdamW). */
  readonly decoupled: boolean;
  #h: AdamHyper;

  /**
   * Creates the optimizer over `model`'s trainable parameters.
   *
   * @param model The model whose trainable parameters to update.
   * @param options `lr`, `betas`, `eps`, `weightDecay`.
   * @throws {OptionError} For an unknown option or a value out of range.
   */
  constructor(model: GoogLeNet, options: AdamOptions = {}) {
    const name = new.target === AdamW ? "AdamW" : "Adam";
    const o = checkOptions(name, options, ["lr", "betas", "eps", "weightDecay"]);
    super(model, o.lr ?? 1e-3);
    this.decoupled = new.target === AdamW;
    this.#h = adamHyper({ ...o }, this.decoupled ? 1e-2 : 0, OptionError);
  }

  /** Decay rates of the first and second moments. */
  get betas(): readonly [number, number] {
    return this.#h.betas;
  }

  /** Added to the denominator. */
  get eps(): number {
    return this.#h.eps;
  }

  /** Weight decay (through the gradient for Adam, decoupled for AdamW). */
  get weightDecay(): number {
    return this.#h.weightDecay;
  }

  /** The per-parameter state Adam keeps. */
  protected override stateKeys(): readonly (readonly [string, "tensor" | "count"])[] {
    return [["step", "count"], ["exp_avg", "tensor"], ["exp_avg_sq", "tensor"]];
  }

  /** Restores a saved group's hyper-parameters, checked as the constructor's. */
  protected override restoreHyperParameters(group: Record<string, unknown>): void {
    this.#h = adamHyper({ ...this.#h, ...group }, this.#h.weightDecay, StateDictError);
  }

  /** The hyper-parameters, for `stateDict()`. */
  protected override hyperParameters(): Record<string, number | number[]> {
    return { betas: [...this.betas], eps: this.eps, weightDecay: this.weightDecay };
  }

  /** The current hyper-parameters (replaced whole by `loadStateDict`). */
  protected override hyper(): AdamHyper {
    return this.#h;
  }

  /** The two moments. */
  protected override slots(): readonly string[] {
    return ["exp_avg", "exp_avg_sq"];
  }

  /**
   * Counts the step and gives the rule's f32 constants (bias corrections in
   * f64, then rounded), what the loop below and the Wasm kernel compute with.
   */
  protected override rule(h: AdamHyper, lr: number, state: ParameterState): AdamRule {
    const [beta1, beta2] = h.betas;
    const step = ((state.step as number | undefined) ?? 0) + 1;
    state.step = step;
    return {
      kind: "adam",
      b1: f(beta1),
      b2: f(beta2),
      a1: f(1 - beta1),
      a2: f(1 - beta2),
      weightDecay: f(h.weightDecay),
      eps: f(h.eps),
      stepSize: f(-(lr / (1 - beta1 ** step))),
      bc2: f(Math.sqrt(1 - beta2 ** step)),
      shrink: f(1 - lr * h.weightDecay),
      decoupled: this.decoupled,
    };
  }

  /** One step of the update rule on one parameter, in place. */
  protected override update(
    h: AdamHyper,
    p: Parameter,
    grad: Float32Array,
    lr: number,
    state: ParameterState,
  ): void {
    const { b1, b2, a1, a2, weightDecay: wd, eps, stepSize, bc2, shrink } = this.rule(h, lr, state);
    const m = stateTensor(state, "exp_avg", p).data;
    const v = stateTensor(state, "exp_avg_sq", p).data;
    const x = p.data;
    for (let i = 0; i < x.length; i++) {
      let g = grad[i];
      if (this.decoupled) {
        if (h.weightDecay !== 0) x[i] = f(x[i] * shrink);
      } else if (h.weightDecay !== 0) {
        g = f(g + wd * x[i]);
      }
      const mi = f(f(m[i] * b1) + a1 * g);
      const vi = f(f(v[i] * b2) + f(a2 * g) * g);
      m[i] = mi;
      v[i] = vi;
      const denom = f(f(f(Math.sqrt(vi)) / bc2) + eps);
      x[i] = f(x[i] + stepSize * f(mi / denom));
    }
  }
}

/**
 * PyTorch's AdamW: Adam with decoupled weight decay (default 1e-2).
 *
 * @example
 * ```ts
 * import { AdamW, GoogLeNet, Tensor } from "../../mod.ts";
 * const model = await GoogLeNet.create({ numClasses: 3, auxLogits: false, threads: 1 });
 * const opt = new AdamW(model, { lr: 1e-4 });
 * await model.backward(Tensor.zeros([1, 3, 64, 64]), [1]);
 * await opt.step();
 * await model.dispose();
 * ```
 */
export class AdamW extends Adam {
  /**
   * Creates the optimizer over `model`'s trainable parameters.
   *
   * @param model The model whose trainable parameters to update.
   * @param options `lr`, `betas`, `eps`, `weightDecay` (default 1e-2).
   */
  constructor(model: GoogLeNet, options: AdamOptions = {}) {
    super(model, options);
  }
}
