"""The ONNX-to-TFLite converters that ``facesearch setup-models`` runs once (models.DERIVED).

- ``graph``: the pinned ONNX graphs with their int8 block-quantized weights folded, and the walk
  that hands each node to its op type's function;
- ``builder``: the TFLite flatbuffer being written, with the one convolution writer shared by
  CONV_2D and DEPTHWISE_CONV_2D;
- ``yunet``, ``sface``: the two networks, one function per ONNX op type;
- ``int8_weights``: the float SFace file with int8 weights.

Only setup imports this package (it loads onnx and the flatbuffer writer); the runtime reads the
files it writes, and the constants those files are written for live in detector.py and
embedder.py.
"""
