/**
 * The set-up the training diagnostics share (bench/training_layers.ts,
 * bench/pool_relu_profile.ts, bench/thread_balance.ts): the seed variant with
 * aux heads and `initWeights`, in training mode, after one AdamW step at
 * batch `batch`, 224x224 (which allocates training's regions and warms the
 * code), with its training plans and a zero loss gradient to profile the
 * backward plan with.
 *
 * @module
 */

import { AdamW, GoogLeNet, Tensor } from "../mod.ts";
import type { WasmBackend } from "../src/backend/wasm/backend.ts";
import { deterministicInput } from "../tools/deterministic.ts";

/** A model one training step in, and what its plans need to be profiled. */
export interface WarmTraining {
  model: GoogLeNet;
  /** The AdamW (lr 1e-4) that made the step. */
  optimizer: AdamW;
  backend: WasmBackend;
  plans: ReturnType<GoogLeNet["trainingPlan"]>;
  input: Tensor;
  labels: number[];
  /** A zero gradient of the three heads' logits: the backward plan's input. */
  grads: Tensor;
}

/**
 * Builds the model and runs one step; the caller disposes of `model`.
 *
 * @param name Names the deterministic input (each bench its own).
 */
export async function warmTrainingStep(
  name: string,
  batch: number,
  threads: number,
): Promise<WarmTraining> {
  const input = deterministicInput(`${name} ${batch}`, [batch, 3, 224, 224]);
  const labels = Array.from({ length: batch }, (_, i) => (61 * i) % 1000);
  const model = (await GoogLeNet.create({
    backend: "wasm",
    variant: "seed",
    auxLogits: true,
    initWeights: true,
    threads,
  })).train();
  try {
    const opt = new AdamW(model, { lr: 1e-4 });
    await model.backward(input, labels);
    await opt.step();
    await opt.zeroGrad();
    return {
      model,
      optimizer: opt,
      backend: model.backend as WasmBackend,
      plans: model.trainingPlan(input.shape),
      input,
      labels,
      grads: Tensor.zeros([batch, 3 * model.numClasses, 1, 1]),
    };
  } catch (error) {
    await model.dispose();
    throw error;
  }
}
