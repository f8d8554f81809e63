"""Writing a one-subgraph TFLite model: tensors, buffers, operators, and the convolutions.

Every operator written is one LiteRT's XNNPACK delegate takes. The files must come out the same
byte for byte at every setup (models.py pins their sha256): tensors and operators are numbered in
the order they are asked for.
"""

from __future__ import annotations

from typing import NamedTuple

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as tfl


class Feature(NamedTuple):
    """A float32 activation tensor of shape (1, height, width, channels)."""

    tensor: int
    height: int
    width: int
    channels: int


class Builder:
    """Tensors, buffers and operators of a one-subgraph TFLite model being written."""

    def __init__(self, description: bytes) -> None:
        self.model = tfl.ModelT()
        self.model.version = 3
        self.model.description = description
        self.model.buffers = [tfl.BufferT()]  # buffer 0: no data (activations)
        self.model.operatorCodes = []
        self.graph = tfl.SubGraphT()
        self.graph.tensors = []
        self.graph.operators = []
        self._codes: dict[int, int] = {}

    def tensor(self, shape: list[int], data: np.ndarray | None = None) -> int:
        """A float32 activation tensor, or a constant one (int32 when ``data`` is)."""
        t = tfl.TensorT()
        t.shape = list(shape)
        t.type = tfl.TensorType.INT32 if data is not None and data.dtype == np.int32 else 0
        t.buffer = 0
        if data is not None:
            buffer = tfl.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            t.buffer = len(self.model.buffers)
            self.model.buffers.append(buffer)
        self.graph.tensors.append(t)
        return len(self.graph.tensors) - 1

    def feature(self, height: int, width: int, channels: int) -> Feature:
        """A new activation tensor of shape (1, height, width, channels)."""
        return Feature(self.tensor([1, height, width, channels]), height, width, channels)

    def op(
        self,
        code: int,
        inputs: list[int],
        outputs: list[int],
        options_type: int = 0,
        options: object = None,
    ) -> None:
        """The operator ``code`` (a tfl.BuiltinOperator) from ``inputs`` to ``outputs``."""
        if code not in self._codes:
            entry = tfl.OperatorCodeT()
            entry.builtinCode = code
            entry.deprecatedBuiltinCode = min(code, 127)
            entry.version = 1
            self._codes[code] = len(self.model.operatorCodes)
            self.model.operatorCodes.append(entry)
        o = tfl.OperatorT()
        o.opcodeIndex = self._codes[code]
        o.inputs, o.outputs = inputs, outputs
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.graph.operators.append(o)

    def pads(self) -> int:
        """The int32 (4, 2) amounts of a PAD by one pixel on every side of the height and width."""
        return self.tensor([4, 2], np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32))

    def conv(
        self,
        x: Feature,
        weight: np.ndarray,
        bias: np.ndarray,
        stride: int,
        group: int,
        *,
        relu: bool = False,
        pads: int | None = None,
    ) -> Feature:
        """An ONNX convolution of ``x`` (graph.conv_geometry's ``stride`` and ``group``) with
        ``weight`` (out, in/group, kh, kw) and ``bias``: a CONV_2D if ``group`` is 1, else a
        DEPTHWISE_CONV_2D (one group per channel), the weights laid out channels-last and a
        ReLU fused if asked.

        ONNX's convolutions at stride 2 pad one pixel on every side, where TFLite's SAME would
        pad only after: they become a PAD (by ``pads``, else a new amounts tensor) and a VALID
        convolution."""
        source, height, width, padding = x.tensor, x.height, x.width, tfl.Padding.SAME
        if stride == 2:
            amounts = self.pads() if pads is None else pads
            source = self.tensor([1, height + 2, width + 2, x.channels])
            self.op(
                tfl.BuiltinOperator.PAD,
                [x.tensor, amounts],
                [source],
                tfl.BuiltinOptions.PadOptions,
                tfl.PadOptionsT(),
            )
            height, width, padding = height // 2, width // 2, tfl.Padding.VALID
        channels = weight.shape[0]
        options: tfl.Conv2DOptionsT | tfl.DepthwiseConv2DOptionsT
        if group == 1:
            options = tfl.Conv2DOptionsT()
            kernel = weight.transpose(0, 2, 3, 1)  # (out, kh, kw, in)
            code, options_type = tfl.BuiltinOperator.CONV_2D, tfl.BuiltinOptions.Conv2DOptions
        elif group == x.channels == channels and weight.shape[1] == 1:
            options = tfl.DepthwiseConv2DOptionsT()
            options.depthMultiplier = 1
            kernel = weight[:, 0].transpose(1, 2, 0)[None]  # (1, kh, kw, channels)
            code = tfl.BuiltinOperator.DEPTHWISE_CONV_2D
            options_type = tfl.BuiltinOptions.DepthwiseConv2DOptions
        else:
            raise ValueError(f"unsupported convolution: {group} groups of {x.channels} channels")
        options.padding, options.strideW, options.strideH = padding, stride, stride
        options.dilationWFactor = options.dilationHFactor = 1
        if relu:
            options.fusedActivationFunction = tfl.ActivationFunctionType.RELU
        result = self.feature(height, width, channels)
        weights = self.tensor(list(kernel.shape), kernel.astype(np.float32))
        biases = self.tensor([channels], bias.astype(np.float32))
        self.op(code, [source, weights, biases], [result.tensor], options_type, options)
        return result

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        """The model's flatbuffer, ``inputs`` and ``outputs`` its subgraph's."""
        self.graph.inputs, self.graph.outputs = inputs, outputs
        self.model.subgraphs = [self.graph]
        builder = flatbuffers.Builder(1 << 20)
        builder.Finish(self.model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
