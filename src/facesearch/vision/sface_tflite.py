"""SFace as a TFLite model, made once at setup from the pinned int8 block-quantized ONNX graph.

LiteRT's XNNPACK runs it about a fifth faster than OpenCV 5.0's dnn on this machine (13.2 against
16.0 ms a face on one thread, 7.1 against 8.7 on two; docs/vision.md), and LiteRT is already a
dependency. The graph is a MobileNet: 3x3 and depthwise convolutions, each followed by batch
normalisation and PReLU, then a batch normalisation, a fully connected layer and another batch
normalisation. The weights are dequantized as ONNX's DequantizeLinear does, each batch
normalisation is folded into the layer before it (or, for the one before the fully connected
layer, into that layer), and the layers are laid out channels-last. Embeddings differ from
OpenCV's by at most about 2e-6 (float rounding of the folding). onnx is imported only at
setup (``models.SFACE_TFLITE``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from ai_edge_litert import schema_py_generated as tfl

from facesearch.vision.tflite_writer import Builder, attributes, folded_graph

if TYPE_CHECKING:
    import onnx

INPUT_SIZE = 112
# The graph's own input scaling (its Sub and Mul nodes): applied to the pixels before the network,
# because the first convolution pads its scaled input with zeros.
INPUT_MEAN = 127.5
INPUT_SCALE = 0.0078125


def convert(onnx_model: bytes) -> bytes:
    """The TFLite model (float32, input 1x112x112x3 RGB scaled by INPUT_MEAN and INPUT_SCALE,
    output 1x128 not normalised) equivalent to the SFace ONNX graph."""
    nodes, values = folded_graph(onnx_model)
    scalars = [float(values[n.input[1]][0]) for n in nodes if n.op_type in ("Sub", "Mul")]
    if scalars != [INPUT_MEAN, INPUT_SCALE]:
        raise ValueError(f"unexpected SFace input scaling {scalars}")

    def consumer(output: str, op_type: str) -> onnx.NodeProto:
        return next(n for n in nodes if n.op_type == op_type and n.input[0] == output)

    def producer(name: str) -> onnx.NodeProto:
        return next(n for n in nodes if name in n.output)

    def batch_norm(node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
        """The normalisation as y = x * scale + shift per channel."""
        gamma, beta, mean, var = (values[name].astype(np.float64) for name in node.input[1:])
        scale = gamma / np.sqrt(var + float(attributes(node)["epsilon"]))
        return scale, beta - mean * scale

    out = Builder(b"SFace 2021dec, from the int8bq ONNX graph (facesearch)")
    x = graph_input = out.tensor([1, INPUT_SIZE, INPUT_SIZE, 3])
    size, channels = INPUT_SIZE, 3
    for conv in (n for n in nodes if n.op_type == "Conv"):
        conv_attributes = attributes(conv)
        norm = consumer(conv.output[0], "BatchNormalization")
        scale, shift = batch_norm(norm)
        weight = values[conv.input[1]] * scale[:, None, None, None]  # (out, in, kh, kw)
        bias = shift.astype(np.float32)
        slope = values[consumer(norm.output[0], "PRelu").input[1]].astype(np.float32).ravel()
        stride = int(conv_attributes["strides"][0])  # type: ignore[index]
        padding = tfl.Padding.SAME  # 3x3 at stride 1 pads one pixel each side, as the graph
        if stride == 2:
            pads = out.tensor([4, 2], np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32))
            padded = out.tensor([1, size + 2, size + 2, channels])
            out.pad(x, pads, padded)
            x, size, padding = padded, size // 2, tfl.Padding.VALID
        result = out.tensor([1, size, size, weight.shape[0]])
        if conv_attributes["group"] == 1:
            options = tfl.Conv2DOptionsT()
            kernel = weight.transpose(0, 2, 3, 1)  # (out, kh, kw, in)
            code, options_type = tfl.BuiltinOperator.CONV_2D, tfl.BuiltinOptions.Conv2DOptions
        else:
            options = tfl.DepthwiseConv2DOptionsT()
            options.depthMultiplier = 1
            kernel = weight[:, 0].transpose(1, 2, 0)[None]  # (1, kh, kw, channels)
            code = tfl.BuiltinOperator.DEPTHWISE_CONV_2D
            options_type = tfl.BuiltinOptions.DepthwiseConv2DOptions
        options.padding, options.strideW, options.strideH = padding, stride, stride
        options.dilationWFactor = options.dilationHFactor = 1
        weights = out.tensor(list(kernel.shape), kernel.astype(np.float32))
        out.op(code, [x, weights, out.tensor([len(bias)], bias)], [result], options_type, options)
        channels = weight.shape[0]
        x = out.tensor([1, size, size, channels])
        out.op(tfl.BuiltinOperator.PRELU, [result, out.tensor([1, 1, channels], slope)], [x])

    # bn1 -> Dropout (none at inference) -> Flatten -> Gemm (pre_fc1) -> BatchNormalization (fc1)
    gemm = next(n for n in nodes if n.op_type == "Gemm")
    dropout = producer(producer(gemm.input[0]).input[0])
    before = batch_norm(producer(dropout.input[0]))
    after = batch_norm(consumer(gemm.output[0], "BatchNormalization"))
    weight = values[gemm.input[1]].reshape(-1, channels, size, size)  # flattened channels-first
    bias = values[gemm.input[2]] + np.einsum("ochw,c->o", weight, before[1])
    weight = weight * before[0][None, :, None, None] * after[0][:, None, None, None]
    bias = bias * after[0] + after[1]
    dense = weight.transpose(0, 2, 3, 1).reshape(len(bias), -1).astype(np.float32)
    embedding = out.tensor([1, len(bias)])
    out.op(
        tfl.BuiltinOperator.FULLY_CONNECTED,
        [x, out.tensor(list(dense.shape), dense), out.tensor([len(bias)], bias.astype(np.float32))],
        [embedding],
        tfl.BuiltinOptions.FullyConnectedOptions,
        tfl.FullyConnectedOptionsT(),
    )
    return out.finish([graph_input], [embedding])
