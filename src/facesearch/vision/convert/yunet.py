"""YuNet as a TFLite model, made once at setup from the pinned int8 block-quantized ONNX graph.

The graph: 3x3 convolutions (the first at stride 2, the rest depthwise), 1x1 convolutions,
ReLU, 2x2 max pooling, a feature pyramid (2x nearest upsampling, additions) and, at strides
8, 16 and 32, four heads (class, objectness, box, five points), each a 1x1 convolution and a
3x3 depthwise one. Written here:

- the weights dequantized as ONNX's DequantizeLinear does (in float64, rounded to float32 once),
  laid out channels-last, each ReLU fused into the convolution before it;
- the input RGB, not the graph's BGR: the first convolution's input channels are reversed, so
  callers skip a colour conversion;
- nothing whose constants depend on the input size, so that the interpreter's input can be
  resized to any height and width that are multiples of detector.DIVISOR: the 2x nearest
  upsampling is four copies concatenated on the channel axis then DEPTH_TO_SPACE(2)
  (RESIZE_NEAREST_NEIGHBOR would carry the output size as a constant), and the heads are left
  channels-last;
- the four heads of a stride as one 1x1 convolution to 16 channels and one depthwise 3x3 one,
  giving one output per stride, channels ``HEAD_CHANNELS``; the sigmoids and the decoding are
  the caller's (detector.py), on the few thousand cells.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as tfl

from facesearch.vision.convert.builder import Builder
from facesearch.vision.convert.graph import (
    Graph,
    attributes,
    conv_geometry,
    convert_nodes,
    folded_graph,
    skip,
)
from facesearch.vision.detector import STRIDES

# The channels of each output, in this order: class and objectness logits, box (centre offsets
# and log size, in strides), the five points' offsets (x, y each, in strides).
HEADS = (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))
HEAD_CHANNELS = sum(n for _, n in HEADS)
DEFAULT_SIZE = (640, 640)  # (height, width) written in the file; resized at run time

Heads = dict[int, list[tuple[onnx.NodeProto, onnx.NodeProto]]]


class _YuNet:
    """The model being written, and the feature tensor of each ONNX value written so far."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.heads = _heads(graph)
        self.head_nodes = {id(n) for pairs in self.heads.values() for pair in pairs for n in pair}
        self.first_conv = next(n for n in graph.nodes if n.op_type == "Conv")  # reads the input
        self.out = Builder(b"YuNet 2023mar, from the int8bq ONNX graph (facesearch)")
        self.tensors = {graph.input: self.out.feature(*DEFAULT_SIZE, 3)}
        self.pads = self.out.pads()  # the one PAD amounts tensor of every stride-2 convolution


def convert(onnx_model: bytes) -> bytes:
    """The TFLite model (float32, input 1xHxWx3 RGB 0..255 for H, W multiples of
    detector.DIVISOR, outputs (1, H/s, W/s, HEAD_CHANNELS) raw logits for s in
    detector.STRIDES) equivalent to the YuNet graph."""
    graph = folded_graph(onnx_model)
    state = _YuNet(graph)
    graph_input = state.tensors[graph.input].tensor
    convert_nodes(graph, _OPS, state, "YuNet")
    return state.out.finish([graph_input], [_write_heads(state, s) for s in STRIDES])


def _heads(graph: Graph) -> Heads:
    """Each stride's (1x1, depthwise 3x3) convolutions of its heads, in HEADS order: graph
    output <- [Sigmoid] <- Reshape <- Transpose <- conv2 <- conv1 <- feature."""
    heads: Heads = {}
    for stride in STRIDES:
        for name, channels in HEADS:
            node = graph.producer(f"{name}_{stride}")
            if node.op_type == "Sigmoid":
                node = graph.producer(node.input[0])
            transpose = graph.producer(node.input[0])
            if attributes(transpose)["perm"] != [0, 2, 3, 1]:
                raise ValueError(f"unexpected YuNet head layout at {name}_{stride}")
            conv2 = graph.producer(transpose.input[0])
            conv1 = graph.producer(conv2.input[0])
            if graph.values[conv1.input[1]].shape[:2] != (channels, 64):
                raise ValueError(f"unexpected YuNet head {name}_{stride}")
            heads.setdefault(stride, []).append((conv1, conv2))
    return heads


def _conv(state: _YuNet, node: onnx.NodeProto) -> None:
    """A convolution, the ReLU after it fused; the heads' are written by _write_heads."""
    if id(node) in state.head_nodes:
        return
    weight, bias = state.graph.values[node.input[1]], state.graph.values[node.input[2]]
    if node is state.first_conv:
        weight = weight[:, ::-1]  # the graph's input is BGR; the model's is RGB
    after = state.graph.consumers(node.output[0])
    relu = len(after) == 1 and after[0].op_type == "Relu"
    x = state.tensors[node.input[0]]
    result = state.out.conv(x, weight, bias, *conv_geometry(node), relu=relu, pads=state.pads)
    state.tensors[after[0].output[0] if relu else node.output[0]] = result


def _relu(state: _YuNet, node: onnx.NodeProto) -> None:
    """Fused into the convolution before it (by _conv)."""
    if node.output[0] not in state.tensors:
        raise ValueError(f"unfused YuNet ReLU {node.name}")


def _max_pool(state: _YuNet, node: onnx.NodeProto) -> None:
    a = attributes(node)
    if a["kernel_shape"] != [2, 2] or a["strides"] != [2, 2] or any(a["pads"]):
        raise ValueError(f"unexpected YuNet pooling {node.name}")
    x = state.tensors[node.input[0]]
    options = tfl.Pool2DOptionsT()
    options.padding = tfl.Padding.VALID
    options.strideW = options.strideH = options.filterWidth = options.filterHeight = 2
    result = state.out.feature(x.height // 2, x.width // 2, x.channels)
    state.out.op(
        tfl.BuiltinOperator.MAX_POOL_2D,
        [x.tensor],
        [result.tensor],
        tfl.BuiltinOptions.Pool2DOptions,
        options,
    )
    state.tensors[node.output[0]] = result


def _resize(state: _YuNet, node: onnx.NodeProto) -> None:
    """The 2x nearest upsampling: out[y, x] = in[y // 2, x // 2]. DEPTH_TO_SPACE puts channel
    block dy * 2 + dx of a cell at (2y + dy, 2x + dx); with four identical blocks, every one is
    the cell."""
    a = attributes(node)
    expected = {"mode": b"nearest", "coordinate_transformation_mode": b"asymmetric"}
    scales = state.graph.values[node.input[2]].tolist()
    if any(a[k] != v for k, v in expected.items()) or scales != [1, 1, 2, 2]:
        raise ValueError(f"unexpected YuNet upsampling {node.name}")
    x = state.tensors[node.input[0]]
    copies = state.out.feature(x.height, x.width, 4 * x.channels)
    concat = tfl.ConcatenationOptionsT()
    concat.axis = 3
    state.out.op(
        tfl.BuiltinOperator.CONCATENATION,
        [x.tensor] * 4,
        [copies.tensor],
        tfl.BuiltinOptions.ConcatenationOptions,
        concat,
    )
    result = state.out.feature(2 * x.height, 2 * x.width, x.channels)
    to_space = tfl.DepthToSpaceOptionsT()
    to_space.blockSize = 2
    state.out.op(
        tfl.BuiltinOperator.DEPTH_TO_SPACE,
        [copies.tensor],
        [result.tensor],
        tfl.BuiltinOptions.DepthToSpaceOptions,
        to_space,
    )
    state.tensors[node.output[0]] = result


def _add(state: _YuNet, node: onnx.NodeProto) -> None:
    a, b = (state.tensors[name] for name in node.input)
    result = state.out.feature(a.height, a.width, a.channels)
    state.out.op(
        tfl.BuiltinOperator.ADD,
        [a.tensor, b.tensor],
        [result.tensor],
        tfl.BuiltinOptions.AddOptions,
        tfl.AddOptionsT(),
    )
    state.tensors[node.output[0]] = result


_OPS: dict[str, Callable[[_YuNet, onnx.NodeProto], None]] = {
    "DequantizeLinear": skip,  # the weights, folded by folded_graph
    "Reshape": skip,  # weights likewise, or a head's tail (the caller's)
    "Transpose": skip,  # the heads' tails
    "Sigmoid": skip,
    "Conv": _conv,
    "Relu": _relu,
    "MaxPool": _max_pool,
    "Resize": _resize,
    "Add": _add,
}


def _write_heads(state: _YuNet, stride: int) -> int:
    """The output tensor of one stride's four heads: one 1x1 convolution to every head's
    channels, then one depthwise 3x3, the same sums as the graph's eight."""
    pairs, values = state.heads[stride], state.graph.values
    feature = {conv1.input[0] for conv1, _ in pairs}
    if len(feature) != 1:
        raise ValueError(f"YuNet heads at stride {stride} read different features")
    for conv1, conv2 in pairs:
        depthwise = (1, len(values[conv2.input[1]]))
        if conv_geometry(conv1) != (1, 1) or conv_geometry(conv2) != depthwise:
            raise ValueError(f"YuNet head {conv2.name} is not a 1x1 then a depthwise convolution")
    weight1 = np.concatenate([values[c1.input[1]] for c1, _ in pairs])
    bias1 = np.concatenate([values[c1.input[2]] for c1, _ in pairs])
    heads = state.out.conv(state.tensors[feature.pop()], weight1, bias1, stride=1, group=1)
    weight2 = np.concatenate([values[c2.input[1]] for _, c2 in pairs])
    bias2 = np.concatenate([values[c2.input[2]] for _, c2 in pairs])
    return state.out.conv(heads, weight2, bias2, stride=1, group=HEAD_CHANNELS).tensor
