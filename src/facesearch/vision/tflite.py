"""TFLite interpreters (ai-edge-litert) that keep quiet on stderr."""

from __future__ import annotations

import os
import sys
import tempfile
import threading

from ai_edge_litert.interpreter import Interpreter

# Logged on stderr by the runtime for every interpreter it gives the XNNPACK delegate; TFLite's
# minimal logger reads no setting that turns it off (TF_CPP_MIN_LOG_LEVEL is TensorFlow's).
_NOISE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
_stderr_lock = threading.Lock()


def interpreter(
    content: bytes, threads: int = 1, input_shape: list[int] | None = None
) -> Interpreter:
    """An interpreter of a .tflite model running on ``threads`` threads, tensors allocated (for
    its first input resized to ``input_shape`` if given: allocating at the file's own shape
    first would cost as much again).

    stderr (the file descriptor the runtime writes to) is captured while the interpreter is
    built and written back without the delegate's INFO line, so a command that succeeds prints
    nothing, as ``aws`` does; anything else written meanwhile still comes out.
    """
    with _stderr_lock, tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            built = Interpreter(model_content=content, num_threads=threads)
            if input_shape is not None:
                built.resize_tensor_input(built.get_input_details()[0]["index"], input_shape)
            built.allocate_tensors()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        kept = [line for line in capture.read().splitlines(True) if not line.startswith(_NOISE)]
        if kept:
            os.write(2, b"".join(kept))
    return built
