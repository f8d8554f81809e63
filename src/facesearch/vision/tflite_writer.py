"""Writing TFLite models from ONNX graphs at setup (sface_tflite.py, yunet_tflite.py).

The pinned ONNX graphs carry int8 block-quantized weights behind DequantizeLinear nodes;
``folded_graph`` turns them into float64 constants as ONNX defines them (rounded to float32 once,
when written), and ``Builder`` writes the TFLite flatbuffer. onnx is imported only at setup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as tfl

if TYPE_CHECKING:
    import onnx


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """An ONNX node's attributes as Python values."""
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def folded_graph(onnx_model: bytes) -> tuple[list[onnx.NodeProto], dict[str, np.ndarray]]:
    """The graph's nodes, and its constants with the weights folded: each DequantizeLinear (by
    blocks) and each Reshape of a constant computed, in float64."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(onnx_model)
    nodes = list(proto.graph.node)
    values = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for node in nodes:
        if node.op_type == "DequantizeLinear":
            quantized, scale, zero = (values[name] for name in node.input)
            axis, block = attributes(node).get("axis", 1), attributes(node)["block_size"]
            picks = np.arange(quantized.shape[axis]) // block
            scale, zero = np.take(scale, picks, axis), np.take(zero, picks, axis)
            values[node.output[0]] = (quantized.astype(np.float64) - zero) * scale
        elif node.op_type == "Reshape" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]].reshape(values[node.input[1]])
    return nodes, values


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

    def op(
        self,
        code: int,
        inputs: list[int],
        outputs: list[int],
        options_type: int = 0,
        options: object = None,
    ) -> None:
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

    def pad(self, x: int, pads: int, padded: int) -> None:
        """PAD ``x`` into ``padded`` by the int32 (4, 2) ``pads`` tensor. ONNX's convolutions
        at stride 2 pad one pixel on every side, where TFLite's SAME would pad only after: they
        become a PAD and a VALID convolution."""
        self.op(
            tfl.BuiltinOperator.PAD,
            [x, pads],
            [padded],
            tfl.BuiltinOptions.PadOptions,
            tfl.PadOptionsT(),
        )

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        self.graph.inputs, self.graph.outputs = inputs, outputs
        self.model.subgraphs = [self.graph]
        builder = flatbuffers.Builder(1 << 20)
        builder.Finish(self.model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
