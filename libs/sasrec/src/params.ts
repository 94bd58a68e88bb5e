import * as tf from '@tensorflow/tfjs-core';
import { SeededRandom } from './rng';

/** How a parameter is initialised. */
export type Initializer =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  /** Glorot/Xavier uniform over the last two dimensions (the original SASRec uses Xavier init). */
  | { kind: 'glorot' }
  | { kind: 'normal'; std: number };

/** Values of one named parameter, detached from any tfjs backend. */
export interface NamedWeight {
  name: string;
  shape: number[];
  values: Float32Array;
}

function initialValues(shape: number[], init: Initializer, rng: SeededRandom): Float32Array {
  const size = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(size);
  switch (init.kind) {
    case 'zeros':
      return values;
    case 'ones':
      return values.fill(1);
    case 'normal':
      for (let i = 0; i < size; i++) values[i] = rng.normal() * init.std;
      return values;
    case 'glorot': {
      const fanOut = shape[shape.length - 1];
      const fanIn = shape.length >= 2 ? shape[shape.length - 2] : fanOut;
      const limit = Math.sqrt(6 / (fanIn + fanOut));
      for (let i = 0; i < size; i++) values[i] = (rng.float() * 2 - 1) * limit;
      return values;
    }
  }
}

/**
 * The trainable variables of one model, by name, in creation order. Initial values come from the
 * model's `SeededRandom` (not from tfjs' generators) so a seed gives the same weights on every
 * backend. Variables are created unnamed in tfjs because tfjs names must be globally unique and
 * several models may live in one process.
 */
export class ParameterStore {
  private readonly variables = new Map<string, tf.Variable>();

  constructor(private readonly rng: SeededRandom) {}

  add(name: string, shape: number[], init: Initializer): tf.Variable {
    if (this.variables.has(name)) throw new Error(`parameter ${name} already exists`);
    const variable = tf.tidy(() =>
      tf.variable(tf.tensor(initialValues(shape, init, this.rng), shape, 'float32'), true),
    );
    this.variables.set(name, variable);
    return variable;
  }

  get(name: string): tf.Variable {
    const variable = this.variables.get(name);
    if (!variable) throw new Error(`unknown parameter ${name}`);
    return variable;
  }

  list(): tf.Variable[] {
    return [...this.variables.values()];
  }

  /** Copies every parameter's current values out of the backend. */
  read(): NamedWeight[] {
    return [...this.variables.entries()].map(([name, variable]) => ({
      name,
      shape: [...variable.shape],
      values: variable.dataSync() as Float32Array,
    }));
  }

  /** Overwrites every parameter; names and shapes must match exactly (no partial loads). */
  assign(weights: readonly NamedWeight[]): void {
    const byName = new Map(weights.map((w) => [w.name, w]));
    for (const [name, variable] of this.variables) {
      const weight = byName.get(name);
      if (!weight) throw new Error(`weights lack parameter ${name}`);
      if (
        weight.shape.length !== variable.shape.length ||
        weight.shape.some((d, i) => d !== variable.shape[i])
      ) {
        throw new Error(
          `parameter ${name}: shape [${weight.shape}] does not match the model's [${variable.shape}]`,
        );
      }
      tf.tidy(() => variable.assign(tf.tensor(weight.values, weight.shape, 'float32')));
    }
    const unknown = weights.filter((w) => !this.variables.has(w.name)).map((w) => w.name);
    if (unknown.length > 0)
      throw new Error(`weights hold parameters the model does not have: ${unknown.join(', ')}`);
  }

  dispose(): void {
    for (const variable of this.variables.values()) variable.dispose();
    this.variables.clear();
  }
}
