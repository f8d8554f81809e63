"""Int8 weights for a float TFLite model's convolutions and fully connected layers.

TFLite's dynamic-range quantization: each CONV_2D and FULLY_CONNECTED weight tensor is stored as
int8 with one scale per output channel (symmetric, -127..127), activations stay float32 between
layers. LiteRT's XNNPACK runs such a layer by quantizing its input on the fly and multiplying in
int8 (VNNI where the CPU has it): SFace runs 2.7 times faster on this machine (docs/vision.md).
Its embeddings move a little (cosine to the float model's: median 0.9994, 1st percentile 0.998 on
faces-calib), so the int8 network is a FaceModelVersion of its own, calibrated anew; its error
rates are the float one's (docs/vision.md). Depthwise convolutions stay float: quantized, they
ran no faster and moved the embeddings twice as far.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as tfl

_QUANTIZED_OPS = (tfl.BuiltinOperator.CONV_2D, tfl.BuiltinOperator.FULLY_CONNECTED)


def convert(model: bytes) -> bytes:
    """``model`` with the constant float32 weights of its CONV_2D and FULLY_CONNECTED layers in
    per-output-channel int8 (deterministic: the same bytes for the same model)."""
    tree = tfl.ModelT.InitFromObj(tfl.Model.GetRootAsModel(model, 0))
    codes = [code.builtinCode for code in tree.operatorCodes]
    for graph in tree.subgraphs:
        for op in graph.operators:
            if codes[op.opcodeIndex] not in _QUANTIZED_OPS:
                continue
            tensor = graph.tensors[op.inputs[1]]
            buffer = tree.buffers[tensor.buffer]
            if tensor.type != tfl.TensorType.FLOAT32 or buffer.data is None:
                continue  # already quantized, or computed at run time
            weights = np.frombuffer(bytes(buffer.data), np.float32).reshape(tensor.shape)
            flat = weights.reshape(len(weights), -1).astype(np.float64)  # output channel first
            scale = np.abs(flat).max(axis=1) / 127.0
            scale[scale == 0] = 1.0  # an all-zero channel stays zero
            values = np.clip(np.round(flat / scale[:, None]), -127, 127).astype(np.int8)
            buffer.data = np.frombuffer(values.tobytes(), np.uint8)
            tensor.type = tfl.TensorType.INT8
            quantization = tfl.QuantizationParametersT()
            quantization.scale = scale.astype(np.float32).tolist()
            quantization.zeroPoint = [0] * len(scale)
            quantization.quantizedDimension = 0
            tensor.quantization = quantization
    builder = flatbuffers.Builder(len(model))
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
