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
  resized to any height and width that are multiples of 32: the 2x nearest upsampling is four
  copies concatenated on the channel axis then DEPTH_TO_SPACE(2) (RESIZE_NEAREST_NEIGHBOR
  would carry the output size as a constant), and the heads are left channels-last;
- the four heads of a stride as one 1x1 convolution to 16 channels and one depthwise 3x3 one,
  giving one output per stride, channels ``HEAD_CHANNELS``; the sigmoids and the decoding are
  the caller's (detector.py), on the few thousand cells.

Every operator is one the XNNPACK delegate takes. onnx is imported only at setup
(``models.YUNET_TFLITE``).
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as tfl

from facesearch.vision.tflite_writer import Builder, attributes, folded_graph

STRIDES = (8, 16, 32)
# The channels of each output, in this order: class and objectness logits, box (centre offsets
# and log size, in strides), the five points' offsets (x, y each, in strides).
HEADS = (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))
HEAD_CHANNELS = sum(n for _, n in HEADS)
DEFAULT_SIZE = (640, 640)  # (height, width) written in the file; resized at run time
DIVISOR = 32


def convert(onnx_model: bytes) -> bytes:
    """The TFLite model (float32, input 1xHxWx3 RGB 0..255 for H, W multiples of 32, outputs
    (1, H/s, W/s, HEAD_CHANNELS) raw logits for s in STRIDES) equivalent to the YuNet graph."""
    import onnx

    nodes, values = folded_graph(onnx_model)

    def producer(name: str) -> onnx.NodeProto:
        return next(n for n in nodes if name in n.output)

    def consumers(name: str) -> list[onnx.NodeProto]:
        return [n for n in nodes if name in n.input]

    # The heads: graph output <- [Sigmoid] <- Reshape <- Transpose <- conv2 <- conv1 <- feature.
    heads: dict[int, list[tuple[onnx.NodeProto, onnx.NodeProto]]] = {}
    for stride in STRIDES:
        for name, channels in HEADS:
            node = producer(f"{name}_{stride}")
            if node.op_type == "Sigmoid":
                node = producer(node.input[0])
            transpose = producer(node.input[0])
            if attributes(transpose)["perm"] != [0, 2, 3, 1]:
                raise ValueError(f"unexpected YuNet head layout at {name}_{stride}")
            conv2 = producer(transpose.input[0])
            conv1 = producer(conv2.input[0])
            if values[conv1.input[1]].shape[:2] != (channels, 64):
                raise ValueError(f"unexpected YuNet head {name}_{stride}")
            heads.setdefault(stride, []).append((conv1, conv2))
    head_nodes = {id(n) for pairs in heads.values() for pair in pairs for n in pair}

    out = Builder(b"YuNet 2023mar, from the int8bq ONNX graph (facesearch)")
    tensors: dict[str, tuple[int, int, int, int]] = {}  # ONNX name -> (tensor, h, w, channels)
    height, width = DEFAULT_SIZE
    graph_input = out.tensor([1, height, width, 3])
    tensors["input"] = (graph_input, height, width, 3)
    pads = out.tensor([4, 2], np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32))

    def conv(
        node: onnx.NodeProto, weight: np.ndarray, bias: np.ndarray, relu: bool
    ) -> tuple[int, int, int, int]:
        """A CONV_2D or DEPTHWISE_CONV_2D of ``node``'s input, weight (out, in/group, kh, kw):
        its output (tensor, h, w, channels)."""
        x, h, w, c = tensors[node.input[0]]
        a = attributes(node)
        stride, group = int(a["strides"][0]), int(a["group"])
        kernel_size, pad = int(a["kernel_shape"][0]), int(a["pads"][0])
        if list(a["strides"]) != [stride] * 2 or list(a["pads"]) != [pad] * 4:
            raise ValueError(f"unexpected YuNet convolution {node.name}")
        if stride == 2:
            padded = out.tensor([1, h + 2, w + 2, c])
            out.pad(x, pads, padded)
            x, h, w, padding = padded, h // 2, w // 2, tfl.Padding.VALID
        elif stride == 1 and pad == kernel_size // 2:
            padding = tfl.Padding.SAME
        else:
            raise ValueError(f"unexpected YuNet convolution {node.name}")
        channels = weight.shape[0]
        if group == 1:
            options = tfl.Conv2DOptionsT()
            kernel = weight.transpose(0, 2, 3, 1)  # (out, kh, kw, in)
            code, options_type = tfl.BuiltinOperator.CONV_2D, tfl.BuiltinOptions.Conv2DOptions
        elif group == c == channels and weight.shape[1] == 1:
            options = tfl.DepthwiseConv2DOptionsT()
            options.depthMultiplier = 1
            kernel = weight[:, 0].transpose(1, 2, 0)[None]  # (1, kh, kw, channels)
            code = tfl.BuiltinOperator.DEPTHWISE_CONV_2D
            options_type = tfl.BuiltinOptions.DepthwiseConv2DOptions
        else:
            raise ValueError(f"unexpected YuNet convolution groups in {node.name}")
        options.padding, options.strideW, options.strideH = padding, stride, stride
        options.dilationWFactor = options.dilationHFactor = 1
        if relu:
            options.fusedActivationFunction = tfl.ActivationFunctionType.RELU
        result = out.tensor([1, h, w, channels])
        weights = out.tensor(list(kernel.shape), kernel.astype(np.float32))
        biases = out.tensor([channels], bias.astype(np.float32))
        out.op(code, [x, weights, biases], [result], options_type, options)
        return result, h, w, channels

    first_conv = next(n for n in nodes if n.op_type == "Conv")
    for node in nodes:
        if node.op_type in ("DequantizeLinear", "Reshape", "Transpose", "Sigmoid"):
            continue  # weights (folded above) or the heads' tails (left to the caller)
        if id(node) in head_nodes:
            continue
        if node.op_type == "Conv":
            weight, bias = values[node.input[1]], values[node.input[2]]
            if node is first_conv:
                weight = weight[:, ::-1]  # the graph's input is BGR; the model's is RGB
            after = consumers(node.output[0])
            relu = len(after) == 1 and after[0].op_type == "Relu"
            tensors[after[0].output[0] if relu else node.output[0]] = conv(node, weight, bias, relu)
        elif node.op_type == "Relu":
            if node.output[0] not in tensors:
                raise ValueError(f"unfused YuNet ReLU {node.name}")
        elif node.op_type == "MaxPool":
            a = attributes(node)
            if a["kernel_shape"] != [2, 2] or a["strides"] != [2, 2] or any(a["pads"]):
                raise ValueError(f"unexpected YuNet pooling {node.name}")
            x, h, w, c = tensors[node.input[0]]
            options = tfl.Pool2DOptionsT()
            options.padding = tfl.Padding.VALID
            options.strideW = options.strideH = options.filterWidth = options.filterHeight = 2
            result = out.tensor([1, h // 2, w // 2, c])
            out.op(
                tfl.BuiltinOperator.MAX_POOL_2D,
                [x],
                [result],
                tfl.BuiltinOptions.Pool2DOptions,
                options,
            )
            tensors[node.output[0]] = (result, h // 2, w // 2, c)
        elif node.op_type == "Resize":
            a = attributes(node)
            expected = {"mode": b"nearest", "coordinate_transformation_mode": b"asymmetric"}
            scales = values[node.input[2]].tolist()
            if any(a[k] != v for k, v in expected.items()) or scales != [1, 1, 2, 2]:
                raise ValueError(f"unexpected YuNet upsampling {node.name}")
            x, h, w, c = tensors[node.input[0]]
            # out[y, x] = in[y // 2, x // 2]: DEPTH_TO_SPACE puts channel block dy * 2 + dx of
            # a cell at (2y + dy, 2x + dx); with four identical blocks, every one is the cell.
            copies = out.tensor([1, h, w, 4 * c])
            concat = tfl.ConcatenationOptionsT()
            concat.axis = 3
            out.op(
                tfl.BuiltinOperator.CONCATENATION,
                [x] * 4,
                [copies],
                tfl.BuiltinOptions.ConcatenationOptions,
                concat,
            )
            result = out.tensor([1, 2 * h, 2 * w, c])
            to_space = tfl.DepthToSpaceOptionsT()
            to_space.blockSize = 2
            out.op(
                tfl.BuiltinOperator.DEPTH_TO_SPACE,
                [copies],
                [result],
                tfl.BuiltinOptions.DepthToSpaceOptions,
                to_space,
            )
            tensors[node.output[0]] = (result, 2 * h, 2 * w, c)
        elif node.op_type == "Add":
            (a_index, h, w, c), (b_index, *_) = (tensors[name] for name in node.input)
            result = out.tensor([1, h, w, c])
            out.op(
                tfl.BuiltinOperator.ADD,
                [a_index, b_index],
                [result],
                tfl.BuiltinOptions.AddOptions,
                tfl.AddOptionsT(),
            )
            tensors[node.output[0]] = (result, h, w, c)
        else:
            raise ValueError(f"YuNet graph has an unexpected {node.op_type} node ({node.name})")

    outputs = []
    for stride in STRIDES:
        pairs = heads[stride]
        feature = {conv1.input[0] for conv1, _ in pairs}
        if len(feature) != 1:
            raise ValueError(f"YuNet heads at stride {stride} read different features")
        # One 1x1 convolution to every head's channels, then one depthwise 3x3: the same sums.
        first = pairs[0][0]
        weight1 = np.concatenate([values[c1.input[1]] for c1, _ in pairs])
        bias1 = np.concatenate([values[c1.input[2]] for c1, _ in pairs])
        tensors[f"heads_{stride}"] = conv(first, weight1, bias1, relu=False)
        for _, c2 in pairs:
            if int(attributes(c2)["group"]) != values[c2.input[1]].shape[0]:
                raise ValueError(f"YuNet head {c2.name} is not depthwise")
        weight2 = np.concatenate([values[c2.input[1]] for _, c2 in pairs])
        bias2 = np.concatenate([values[c2.input[2]] for _, c2 in pairs])
        merged = onnx.helper.make_node(
            "Conv",
            [f"heads_{stride}"],
            [f"out_{stride}"],
            strides=[1, 1],
            pads=[1, 1, 1, 1],
            kernel_shape=[3, 3],
            group=HEAD_CHANNELS,
        )
        outputs.append(conv(merged, weight2, bias2, relu=False)[0])
    return out.finish([graph_input], outputs)
