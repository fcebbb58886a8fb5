/**
 * What a run folder holds (written by the trainer, read by `orthornn plot` and `sweep`):
 *   config.json     the full training configuration (TrainConfig)
 *   metrics.jsonl   one JSON record per line, in the order they happened (types below)
 *   last.safetensors / best.safetensors   checkpoints
 */

/** Task metrics; which fields are present depends on the task. */
export interface TaskMetrics {
  /** Mean loss per scored position (nats for cross-entropy). */
  loss: number;
  /** Fraction right: copy (last 10 steps), MNIST, characters. */
  accuracy?: number;
  /** Bits per character (PTB, text). */
  bitsPerChar?: number;
  /** Mean squared error (adding). */
  mse?: number;
}

export interface SpectrumStats {
  min: number;
  mean: number;
  max: number;
  std: number;
}

/** One training step's log line (written every `logEvery` steps). */
export interface TrainRecord extends TaskMetrics {
  type: 'train';
  step: number;
  epoch: number;
  /** Seconds of training since the run started (a resumed run's clock goes on from its checkpoint). */
  time: number;
  lr: number;
  /** The gradients' global norm before clipping. */
  gradientNorm: number;
  /** ‖MᵀM − I‖_max of U and V (svd models only). */
  orthogonality?: { U: number; V: number };
  /** Singular values of the recurrent matrix (not for the LSTM). */
  singularValues?: SpectrumStats;
}

/** Metrics on a held-out split: 'valid' during training, 'test' at the end on the best weights. */
export interface EvalRecord extends TaskMetrics {
  type: 'valid' | 'test';
  step: number;
  time: number;
  /** Sequences evaluated. */
  sequences: number;
}

/** ‖∂L/∂h_t‖ for t = 1..T (written every `gradientNormsEvery` steps). */
export interface GradientNormsRecord {
  type: 'gradientNorms';
  step: number;
  norms: number[];
}

export type RunRecord = TrainRecord | EvalRecord | GradientNormsRecord;
