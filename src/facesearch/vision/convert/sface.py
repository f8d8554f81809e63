"""SFace as a TFLite model, made once at setup from the pinned int8 block-quantized ONNX graph.

LiteRT's XNNPACK runs it about a fifth faster than OpenCV 5.0's dnn on this machine (13.2 against
16.0 ms a face on one thread, 7.1 against 8.7 on two; docs/vision.md), and LiteRT is already a
dependency. The graph is a MobileNet: 3x3 and depthwise convolutions, each followed by batch
normalisation and PReLU, then a batch normalisation, a fully connected layer and another batch
normalisation. The weights are dequantized as ONNX's DequantizeLinear does, each batch
normalisation is folded into the layer before it (or, for the one before the fully connected
layer, into that layer), and the layers are laid out channels-last. Embeddings differ from
OpenCV's by at most about 2e-6 (float rounding of the folding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as tfl

from facesearch.vision.convert.builder import Builder, Feature
from facesearch.vision.convert.graph import (
    Graph,
    attributes,
    conv_geometry,
    convert_nodes,
    folded_graph,
    skip,
)
from facesearch.vision.embedder import INPUT_MEAN, INPUT_SCALE, INPUT_SIZE


@dataclass
class _SFace:
    """The model being written, the feature tensor of each ONNX value written so far, and the
    embedding once written."""

    graph: Graph
    out: Builder
    tensors: dict[str, Feature] = field(default_factory=dict)
    embedding: int | None = None


def convert(onnx_model: bytes) -> bytes:
    """The TFLite model (float32, input 1x112x112x3 RGB scaled by embedder.INPUT_MEAN and
    embedder.INPUT_SCALE, output 1x128 not normalised) equivalent to the SFace ONNX graph."""
    graph = folded_graph(onnx_model)
    constants = [n.input[1] for n in graph.nodes if n.op_type in ("Sub", "Mul")]
    scaling = [float(graph.values[name][0]) for name in constants]
    if scaling != [INPUT_MEAN, INPUT_SCALE]:
        raise ValueError(f"unexpected SFace input scaling {scaling}")
    state = _SFace(graph, Builder(b"SFace 2021dec, from the int8bq ONNX graph (facesearch)"))
    graph_input = state.tensors[graph.input] = state.out.feature(INPUT_SIZE, INPUT_SIZE, 3)
    convert_nodes(graph, _OPS, state, "SFace")
    if state.embedding is None:
        raise ValueError("SFace graph has no fully connected layer")
    return state.out.finish([graph_input.tensor], [state.embedding])


def _input_scaling(state: _SFace, node: onnx.NodeProto) -> None:
    """The graph's Sub of INPUT_MEAN and Mul by INPUT_SCALE (checked by convert): the caller's,
    on the pixels, because the first convolution pads its scaled input with zeros."""
    state.tensors[node.output[0]] = state.tensors[node.input[0]]


def _batch_norm(graph: Graph, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
    """A BatchNormalization node as y = x * scale + shift per channel, in float64."""
    gamma, beta, mean, var = (graph.values[name].astype(np.float64) for name in node.input[1:])
    scale = gamma / np.sqrt(var + float(attributes(node)["epsilon"]))
    return scale, beta - mean * scale


def _conv(state: _SFace, node: onnx.NodeProto) -> None:
    """A convolution with the batch normalisation after it folded in."""
    if len(node.input) != 2:
        raise ValueError(f"unexpected SFace convolution bias {node.name}")
    norm = state.graph.consumer(node.output[0], "BatchNormalization")
    scale, shift = _batch_norm(state.graph, norm)
    weight = state.graph.values[node.input[1]] * scale[:, None, None, None]  # (out, in, kh, kw)
    x = state.tensors[node.input[0]]
    state.tensors[norm.output[0]] = state.out.conv(x, weight, shift, *conv_geometry(node))


def _batch_normalization(state: _SFace, node: onnx.NodeProto) -> None:
    """Folded into the convolution or fully connected layer before it (by _conv, _gemm) or, the
    one before the dropout, into the fully connected layer after it (by _gemm)."""
    before = state.graph.producer(node.input[0]).op_type
    after = [n.op_type for n in state.graph.consumers(node.output[0])]
    if before not in ("Conv", "Gemm") and after != ["Dropout"]:
        raise ValueError(f"SFace batch normalisation {node.name} folds into no layer")


def _prelu(state: _SFace, node: onnx.NodeProto) -> None:
    x = state.tensors[node.input[0]]
    slope = state.graph.values[node.input[1]].astype(np.float32).ravel()
    result = state.out.feature(x.height, x.width, x.channels)
    state.out.op(
        tfl.BuiltinOperator.PRELU,
        [x.tensor, state.out.tensor([1, 1, x.channels], slope)],
        [result.tensor],
    )
    state.tensors[node.output[0]] = result


def _gemm(state: _SFace, node: onnx.NodeProto) -> None:
    """The fully connected layer, the batch normalisations before and after it folded in:
    bn1 -> Dropout (none at inference) -> Flatten -> Gemm (pre_fc1) -> BatchNormalization."""
    graph = state.graph
    flatten = graph.producer(node.input[0])
    dropout = graph.producer(flatten.input[0])
    norm = graph.producer(dropout.input[0])
    layers = [norm.op_type, dropout.op_type, flatten.op_type]
    if layers != ["BatchNormalization", "Dropout", "Flatten"]:
        raise ValueError(f"unexpected SFace layers before {node.name}")
    x = state.tensors[norm.input[0]]
    before = _batch_norm(graph, norm)
    after = _batch_norm(graph, graph.consumer(node.output[0], "BatchNormalization"))
    # Flattened channels-first.
    weight = graph.values[node.input[1]].reshape(-1, x.channels, x.height, x.width)
    bias = graph.values[node.input[2]] + np.einsum("ochw,c->o", weight, before[1])
    weight = weight * before[0][None, :, None, None] * after[0][:, None, None, None]
    bias = bias * after[0] + after[1]
    dense = weight.transpose(0, 2, 3, 1).reshape(len(bias), -1).astype(np.float32)
    out = state.out
    state.embedding = out.tensor([1, len(bias)])
    weights = out.tensor(list(dense.shape), dense)
    biases = out.tensor([len(bias)], bias.astype(np.float32))
    out.op(
        tfl.BuiltinOperator.FULLY_CONNECTED,
        [x.tensor, weights, biases],
        [state.embedding],
        tfl.BuiltinOptions.FullyConnectedOptions,
        tfl.FullyConnectedOptionsT(),
    )


_OPS: dict[str, Callable[[_SFace, onnx.NodeProto], None]] = {
    "DequantizeLinear": skip,  # the weights, folded by folded_graph
    "Reshape": skip,  # likewise
    "Sub": _input_scaling,
    "Mul": _input_scaling,
    "Dropout": skip,  # none at inference: _gemm reads through it
    "Flatten": skip,  # likewise
    "Constant": skip,  # the Dropout's ratio
    "Conv": _conv,
    "BatchNormalization": _batch_normalization,
    "PRelu": _prelu,
    "Gemm": _gemm,
}
