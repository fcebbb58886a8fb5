/**
 * ONNX export of a trained model, for inference anywhere ONNX runs (onnxruntime, TensorRT, …).
 *
 * The graph uses ONNX's own recurrent operators, followed by the output layer:
 *   ElmanRNN  RNN (H_t = f(X_t Wᵀ + H_{t−1} Rᵀ + Wb + Rb)) with W = W_in, R = the recurrent
 *             matrix (U diag(s) Vᵀ materialised for 'svd'), Wb = b, Rb = 0; f is Tanh, Relu,
 *             or Affine(α = 1, β = 0) for the identity
 *   LSTM      LSTM with the gate blocks reordered from PyTorch's (i, f, g, o) to ONNX's
 *             (i, o, f, c), both biases kept
 *   then      y = H W_outᵀ + c
 *
 * Inputs (time-major, float32):
 *   x                   T × B × d
 *   initial_state       B × n, with `initialState: true` (otherwise the model starts from its
 *                       own h0: a learned h0 broadcast over the batch, or zeros)
 *   initial_cell_state  B × n, with `initialState: true` (LSTM; otherwise zeros)
 * Outputs:
 *   y                   T × B × k, the logits (or regression outputs)
 *   probabilities       T × B × k, softmax(y) over the last axis (unless probabilities: false)
 *   final_state         B × n, h_T
 *   final_cell_state    B × n, c_T (LSTM)
 * T and B are dynamic unless fixed by the options. Weights are stored as float32 (a float64
 * model is rounded). The file's metadata_props hold the architecture (`orthornn.architecture`,
 * JSON).
 */
import { endianness } from 'node:os';
import { typeError } from '../errors';
import { writeFileAtomic } from '../io/files';
import { architectureOf, type LoadedModel } from '../models/files';
import { ElmanRNN } from '../models/elman';
import { LSTM } from '../models/lstm';
import { checkBoolean, checkInteger, checkOptions } from '../validate';
import { AttributeType, DataType, onnxType } from './onnx-schema';

export interface OnnxExportOptions {
  /** A fixed sequence length T, or 'dynamic' (the default). */
  sequenceLength?: number | 'dynamic';
  /** A fixed batch size B, or 'dynamic' (the default). */
  batchSize?: number | 'dynamic';
  /** The ONNX opset, 13 to 17 (default 17). */
  opset?: number;
  /** Add the `probabilities` output, softmax(y) over the classes (default true). */
  probabilities?: boolean;
  /**
   * Take the initial states as inputs: initial_state (and initial_cell_state for the LSTM),
   * B × n each, to chain segments of a sequence. Default false: the model starts from its own
   * h0 (a learned h0, or zeros). ONNX graph inputs cannot be left out at run time (onnxruntime
   * for Node ignores a fed value for an input that has a default), hence the two forms.
   */
  initialState?: boolean;
}

/** The IR version of ONNX 1.12, which introduced opset 17; readers of opsets 13–17 accept it. */
const IR_VERSION = 8;
const ACTIVATIONS = { tanh: 'Tanh', relu: 'Relu', identity: 'Affine' } as const;

type Dim = number | string;
interface Attribute {
  name: string;
  type: number;
  i?: number;
  f?: number;
  ints?: number[];
  floats?: number[];
  strings?: Uint8Array[];
}

const attr = {
  int: (name: string, i: number): Attribute => ({ name, type: AttributeType.INT, i }),
  floats: (name: string, floats: number[]): Attribute => ({ name, type: AttributeType.FLOATS, floats }),
  strings: (name: string, values: string[]): Attribute => ({ name, type: AttributeType.STRINGS, strings: values.map((s) => Buffer.from(s, 'utf8')) }),
};

/** float32 values as little-endian bytes (TensorProto.raw_data's layout). */
function rawFloat32(values: ArrayLike<number>): Uint8Array {
  const f32 = values instanceof Float32Array ? values : Float32Array.from(values);
  if (endianness() === 'LE') return new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
  const out = Buffer.alloc(f32.length * 4);
  for (let i = 0; i < f32.length; i++) out.writeFloatLE(f32[i], i * 4);
  return out;
}

/** The nodes, initializers and typed inputs and outputs of one graph. */
class GraphBuilder {
  readonly nodes: object[] = [];
  readonly initializers: object[] = [];
  readonly inputs: object[] = [];
  readonly outputs: object[] = [];

  floats(name: string, dims: number[], values: ArrayLike<number>): string {
    this.initializers.push({ name, dims, data_type: DataType.FLOAT, raw_data: rawFloat32(values) });
    return name;
  }

  int64s(name: string, values: number[]): string {
    this.initializers.push({ name, dims: [values.length], data_type: DataType.INT64, int64_data: values });
    return name;
  }

  node(op_type: string, input: string[], output: string[], attribute: Attribute[] = []): void {
    this.nodes.push({ op_type, input, output, attribute, name: `${op_type}_${this.nodes.length}` });
  }

  static valueInfo(name: string, dims: Dim[], doc_string: string): object {
    const dim = dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d }));
    return { name, doc_string, type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim } } } };
  }

  input(name: string, dims: Dim[], doc: string): void {
    this.inputs.push(GraphBuilder.valueInfo(name, dims, doc));
  }

  output(name: string, dims: Dim[], doc: string): void {
    this.outputs.push(GraphBuilder.valueInfo(name, dims, doc));
  }
}

/** Rows of a [4n, …] LSTM weight (or a [4n] bias) with the gate blocks from PyTorch's i, f, g, o to ONNX's i, o, f, c. */
function toOnnxGateOrder(values: ArrayLike<number>): Float32Array {
  const block = values.length / 4;
  const out = new Float32Array(values.length);
  [0, 3, 1, 2].forEach((from, to) => {
    for (let j = 0; j < block; j++) out[to * block + j] = values[from * block + j];
  });
  return out;
}

function dimOption(fn: string, arg: string, v: unknown, fallback: string): Dim {
  if (v === undefined || v === 'dynamic') return fallback;
  return checkInteger(fn, arg, v, 1, 2 ** 31 - 1);
}

/** The ONNX model's bytes (a serialised ModelProto). */
export async function encodeOnnx(model: LoadedModel, options: OnnxExportOptions = {}): Promise<Uint8Array> {
  const fn = 'exportOnnx';
  if (!(model instanceof ElmanRNN || model instanceof LSTM)) throw typeError(fn, 'model', 'an ElmanRNN or LSTM', model);
  const opts = checkOptions(fn, options, ['sequenceLength', 'batchSize', 'opset', 'probabilities', 'initialState']);
  const T = dimOption(fn, 'options.sequenceLength', opts.sequenceLength, 'sequence');
  const B = dimOption(fn, 'options.batchSize', opts.batchSize, 'batch');
  const opset = checkInteger(fn, 'options.opset', opts.opset ?? 17, 13, 17);
  const probabilities = checkBoolean(fn, 'options.probabilities', opts.probabilities ?? true);
  const stateInputs = checkBoolean(fn, 'options.initialState', opts.initialState ?? false);
  const [n, d, k] = [model.hiddenSize, model.inputSize, model.outputSize];
  const state = await model.state();
  const g = new GraphBuilder();
  const lstm = model instanceof LSTM;

  g.input('x', [T, B, d], 'the inputs, time-major: sequence × batch × features');
  g.int64s('axis_0', [0]);
  g.int64s('axis_1', [1]);
  /**
   * An initial state as the recurrent operator takes it (1 × B × n, the leading axis being
   * ONNX's num_directions): the graph input `name`, or else the model's learned h0 (`value`,
   * 1 × n) broadcast over the batch, or else none ('': the operator starts from zeros).
   */
  const initialState = (name: string, value: ArrayLike<number> | undefined, doc: string): string => {
    let source: string;
    if (stateInputs) {
      g.input(name, [B, n], doc);
      source = name;
    } else if (value) {
      g.int64s('hidden_size', [n]);
      g.node('Shape', ['x'], ['x_shape']);
      g.node('Gather', ['x_shape', 'axis_1'], ['batch_size'], [attr.int('axis', 0)]);
      g.node('Concat', ['batch_size', 'hidden_size'], ['state_shape'], [attr.int('axis', 0)]);
      g.node('Expand', [g.floats('h0', [1, n], value), 'state_shape'], ['h0_expanded']);
      source = 'h0_expanded';
    } else {
      return '';
    }
    g.node('Unsqueeze', [source, 'axis_0'], [`${name}_onnx`]);
    return `${name}_onnx`;
  };

  const recurrentOutputs = ['hidden_states', 'final_state_onnx'];
  if (model instanceof ElmanRNN) {
    let recurrentMatrix: ArrayLike<number>;
    if (model.recurrent === 'svd') {
      const w = model.recurrentMatrix();
      try {
        recurrentMatrix = await w.read();
      } finally {
        w.dispose();
      }
    } else {
      recurrentMatrix = state.W;
    }
    const bias = new Float32Array(2 * n);
    bias.set(state.b);
    const h0 = initialState('initial_state', state.h0, 'h_0 for each sequence');
    const W = g.floats('W_in', [1, n, d], state.W_in);
    const R = g.floats('W', [1, n, n], recurrentMatrix);
    const Bias = g.floats('b', [1, 2 * n], bias);
    const attributes = [attr.int('hidden_size', n), attr.strings('activations', [ACTIVATIONS[model.activation]])];
    if (model.activation === 'identity') attributes.push(attr.floats('activation_alpha', [1]), attr.floats('activation_beta', [0]));
    g.node('RNN', ['x', W, R, Bias, '', h0], recurrentOutputs, attributes);
  } else {
    const h0 = initialState('initial_state', undefined, 'h_0 for each sequence');
    const c0 = initialState('initial_cell_state', undefined, 'c_0 for each sequence');
    const W = g.floats('weight_ih_l0', [1, 4 * n, d], toOnnxGateOrder(state.weight_ih_l0));
    const R = g.floats('weight_hh_l0', [1, 4 * n, n], toOnnxGateOrder(state.weight_hh_l0));
    const bias = new Float32Array(8 * n);
    bias.set(toOnnxGateOrder(state.bias_ih_l0), 0);
    bias.set(toOnnxGateOrder(state.bias_hh_l0), 4 * n);
    const Bias = g.floats('bias_l0', [1, 8 * n], bias);
    g.node('LSTM', ['x', W, R, Bias, '', h0, c0], [...recurrentOutputs, 'final_cell_state_onnx'], [attr.int('hidden_size', n)]);
    g.node('Squeeze', ['final_cell_state_onnx', 'axis_0'], ['final_cell_state']);
  }
  // Y is T × num_directions × B × n; the output layer works on T × B × n.
  g.node('Squeeze', ['hidden_states', 'axis_1'], ['h']);
  g.node('Squeeze', ['final_state_onnx', 'axis_0'], ['final_state']);
  const outT = new Float32Array(n * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) outT[j * k + i] = state.W_out[i * n + j];
  g.node('MatMul', ['h', g.floats('W_out_transposed', [n, k], outT)], ['h_W_out']);
  g.node('Add', ['h_W_out', g.floats('c', [k], state.c)], ['y']);

  g.output('y', [T, B, k], 'the outputs y_t = W_out h_t + c (logits for classification)');
  if (probabilities) {
    g.node('Softmax', ['y'], ['probabilities'], [attr.int('axis', -1)]);
    g.output('probabilities', [T, B, k], 'softmax(y) over the classes');
  }
  g.output('final_state', [B, n], 'h_T');
  if (lstm) g.output('final_cell_state', [B, n], 'c_T');

  const ModelProto = onnxType('ModelProto');
  const message = ModelProto.fromObject({
    ir_version: IR_VERSION,
    opset_import: [{ domain: '', version: opset }],
    producer_name: 'orthornn',
    doc_string: lstm ? 'An LSTM with a linear output layer, exported by orthornn' : 'An Elman RNN with a linear output layer, exported by orthornn',
    graph: {
      name: lstm ? 'lstm' : 'elman_rnn',
      node: g.nodes,
      initializer: g.initializers,
      input: g.inputs,
      output: g.outputs,
    },
    metadata_props: [{ key: 'orthornn.architecture', value: JSON.stringify(architectureOf(model)) }],
  });
  return ModelProto.encode(message).finish();
}

/**
 * Writes `model` as an ONNX model (see the top of this file for its inputs and outputs),
 * atomically: a reader sees the old file or the whole new one.
 */
export async function exportOnnx(model: LoadedModel, file: string, options: OnnxExportOptions = {}): Promise<void> {
  if (typeof file !== 'string' || file === '') throw typeError('exportOnnx', 'file', 'a non-empty string', file);
  writeFileAtomic(file, await encodeOnnx(model, options));
}
