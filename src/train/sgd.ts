/**
 * Stochastic gradient descent with momentum, dampening, Nesterov momentum
 * and weight decay, exactly PyTorch 1.13's `torch.optim.SGD` update (in
 * float32, as its single-tensor path computes it):
 *
 *     g = grad + weight_decay * p
 *     buf = g (first step), else buf = momentum * buf + (1 - dampening) * g
 *     g = g + momentum * buf (nesterov), else g = buf       (when momentum != 0)
 *     p = p - lr * g
 *
 * @module
 */

import { OptionError, StateDictError } from "../errors.ts";
import type { SgdRule } from "../graph/ops.ts";
import type { GoogLeNet, Parameter } from "../model/googlenet.ts";
import { checkBoolean, checkNumber, checkOptions } from "../validate.ts";
import { Optimizer, type ParameterState, stateTensor } from "./optimizer.ts";

/** Options of {@linkcode SGD}. */
export interface SGDOptions {
  /** Learning rate (required, >= 0). */
  lr: number;
  /** Momentum factor (default 0). */
  momentum?: number;
  /** Dampening of the momentum (default 0). */
  dampening?: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay?: number;
  /** Nesterov momentum (default false; needs momentum > 0 and dampening 0). */
  nesterov?: boolean;
}

const f = Math.fround;

/** SGD's hyper-parameters besides the learning rate, as one step uses them. */
export interface SGDHyper {
  /** Momentum factor. */
  readonly momentum: number;
  /** Dampening of the momentum. */
  readonly dampening: number;
  /** Weight decay (through the gradient). */
  readonly weightDecay: number;
  /** Nesterov momentum. */
  readonly nesterov: boolean;
}

/** Checks SGD's hyper-parameters (defaults for absent ones), throwing `error`. */
function sgdHyper(o: Record<string, unknown>, error: typeof OptionError): SGDHyper {
  const h = {
    momentum: checkNumber("momentum", o.momentum, { min: 0, default: 0, error }),
    dampening: checkNumber("dampening", o.dampening, { default: 0, error }),
    weightDecay: checkNumber("weightDecay", o.weightDecay, { min: 0, default: 0, error }),
    nesterov: checkBoolean("nesterov", o.nesterov, { default: false, error }),
  };
  if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) {
    throw new error("Nesterov momentum requires a momentum > 0 and zero dampening");
  }
  return h;
}

/**
 * PyTorch's SGD over a model's trainable parameters.
 *
 * @example
 * ```ts
 * import { GoogLeNet, SGD, Tensor } from "../../mod.ts";
 * const model = await GoogLeNet.create({ numClasses: 3, auxLogits: false, threads: 1 });
 * const opt = new SGD(model, { lr: 0.01, momentum: 0.9 });
 * await model.backward(Tensor.zeros([1, 3, 64, 64]), [2]);
 * await opt.step();
 * opt.zeroGrad();
 * await model.dispose();
 * ```
 */
export class SGD extends Optimizer<SGDHyper> {
  #h: SGDHyper;

  /**
   * Creates the optimizer over `model`'s trainable parameters.
   *
   * @param model The model whose trainable parameters to update.
   * @param options `lr` (required), `momentum`, `dampening`, `weightDecay`, `nesterov`.
   * @throws {OptionError} For an unknown option or a value out of range.
   */
  constructor(model: GoogLeNet, options: SGDOptions) {
    const o = checkOptions("SGD", options, [
      "lr",
      "momentum",
      "dampening",
      "weightDecay",
      "nesterov",
    ]);
    if (o.lr === undefined) throw new OptionError("SGD needs a learning rate: { lr: 0.01 }");
    super(model, o.lr);
    this.#h = sgdHyper({ ...o }, OptionError);
  }

  /** Momentum factor. */
  get momentum(): number {
    return this.#h.momentum;
  }

  /** Dampening of the momentum. */
  get dampening(): number {
    return this.#h.dampening;
  }

  /** Weight decay (through the gradient). */
  get weightDecay(): number {
    return this.#h.weightDecay;
  }

  /** Nesterov momentum. */
  get nesterov(): boolean {
    return this.#h.nesterov;
  }

  /** The per-parameter state SGD keeps. */
  protected override stateKeys(): readonly (readonly [string, "tensor" | "count"])[] {
    return [["momentum_buffer", "tensor"]];
  }

  /** Restores a saved group's hyper-parameters, checked as the constructor's. */
  protected override restoreHyperParameters(group: Record<string, unknown>): void {
    this.#h = sgdHyper({ ...this.#h, ...group }, StateDictError);
  }

  /** The hyper-parameters, for `stateDict()`. */
  protected override hyperParameters(): Record<string, number | boolean> {
    return {
      momentum: this.momentum,
      dampening: this.dampening,
      weightDecay: this.weightDecay,
      nesterov: this.nesterov,
    };
  }

  /** The current hyper-parameters (replaced whole by `loadStateDict`). */
  protected override hyper(): SGDHyper {
    return this.#h;
  }

  /** The momentum buffer, when there is momentum. */
  protected override slots(h: SGDHyper): readonly string[] {
    return h.momentum !== 0 ? ["momentum_buffer"] : [];
  }

  /** The rule's f32 constants (what the loop below and the Wasm kernel compute with). */
  protected override rule(
    h: SGDHyper,
    lr: number,
    _state: ParameterState,
    present: (slot: string) => boolean,
  ): SgdRule {
    return {
      kind: "sgd",
      weightDecay: f(h.weightDecay),
      momentum: f(h.momentum),
      keep: f(1 - h.dampening),
      step: f(-lr),
      nesterov: h.nesterov,
      first: !present("momentum_buffer"),
    };
  }

  /** One step of the update rule on one parameter, in place. */
  protected override update(
    h: SGDHyper,
    p: Parameter,
    grad: Float32Array,
    lr: number,
    state: ParameterState,
  ): void {
    const x = p.data;
    const { weightDecay: wd, momentum: m, keep, step, nesterov } = this.rule(
      h,
      lr,
      state,
      (slot) => state[slot] !== undefined,
    );
    const buf = h.momentum !== 0 ? stateTensor(state, "momentum_buffer", p) : null;
    const first = buf?.created ?? false;
    for (let i = 0; i < x.length; i++) {
      let d = h.weightDecay !== 0 ? f(grad[i] + wd * x[i]) : grad[i];
      if (buf) {
        const b = first ? d : f(f(buf.data[i] * m) + keep * d);
        buf.data[i] = b;
        d = nesterov ? f(d + m * b) : b;
      }
      x[i] = f(x[i] + step * d);
    }
  }
}
