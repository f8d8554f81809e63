"""The pinned ONNX graphs as the converters read them: weights folded, nodes looked up by the
values they make and read, and each node handed to the function of its op type.

The graphs carry int8 block-quantized weights behind DequantizeLinear nodes; ``folded_graph``
turns them into float64 constants as ONNX defines them (rounded to float32 once, when written).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import onnx
from onnx import numpy_helper

State = TypeVar("State")


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """An ONNX node's attributes as Python values."""
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


@dataclass(frozen=True)
class Graph:
    """An ONNX graph's (first) input, its nodes in order, and its constants (initializers and folded
    weights)."""

    input: str
    nodes: list[onnx.NodeProto]
    values: dict[str, np.ndarray]

    def producer(self, name: str) -> onnx.NodeProto:
        """The node that makes the value ``name``."""
        for node in self.nodes:
            if name in node.output:
                return node
        raise ValueError(f"no node of the graph makes {name}")

    def consumers(self, name: str) -> list[onnx.NodeProto]:
        """The nodes that read the value ``name``."""
        return [n for n in self.nodes if name in n.input]

    def consumer(self, name: str, op_type: str) -> onnx.NodeProto:
        """The ``op_type`` node whose first input is the value ``name``."""
        for node in self.nodes:
            if node.op_type == op_type and node.input[0] == name:
                return node
        raise ValueError(f"no {op_type} node reads {name}")


def folded_graph(onnx_model: bytes) -> Graph:
    """The graph, its constants with the weights folded: each DequantizeLinear (by blocks) and
    each Reshape of a constant computed, in float64."""
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
    return Graph(proto.graph.input[0].name, nodes, values)


def conv_geometry(node: onnx.NodeProto) -> tuple[int, int]:
    """A Conv node's stride and group, for the convolutions the builder writes: square, no
    dilation, at stride 1 padded by half an odd kernel on every side (TFLite's SAME), or a 3x3
    at stride 2 padded by one pixel on every side (a PAD, then VALID)."""
    a = attributes(node)
    (kernel, *kernels), (stride, *strides) = a["kernel_shape"], a["strides"]
    pads = a.get("pads", [0] * 4)
    square = kernels == [kernel] and strides == [stride] and list(pads) == [pads[0]] * 4
    dilated = list(a.get("dilations", [1, 1])) != [1, 1]
    padded = (stride == 1 and kernel % 2 == 1 and pads[0] == kernel // 2) or (
        stride == 2 and kernel == 3 and pads[0] == 1
    )
    if not square or dilated or not padded:
        raise ValueError(f"unsupported convolution {node.name} ({a})")
    return int(stride), int(a.get("group", 1))


def convert_nodes(
    graph: Graph,
    ops: Mapping[str, Callable[[State, onnx.NodeProto], None]],
    state: State,
    model: str,
) -> None:
    """Each node of ``graph``, in order, to the function ``ops`` has for its op type."""
    for node in graph.nodes:
        op = ops.get(node.op_type)
        if op is None:
            raise ValueError(f"{model} graph has an unexpected {node.op_type} node ({node.name})")
        op(state, node)


def skip(state: object, node: onnx.NodeProto) -> None:
    """A node that writes nothing: its value is a folded constant, or the caller's."""
