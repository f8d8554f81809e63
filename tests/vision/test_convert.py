"""The ONNX-to-TFLite converters (vision/convert/): the files they write are the pinned ones, to
the byte; they refuse graphs they were not written for; the runtime never loads them."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import onnx
import pytest

from facesearch.vision import models
from facesearch.vision.convert import sface, yunet
from facesearch.vision.convert.graph import conv_geometry


@pytest.mark.parametrize("derived", models.DERIVED, ids=lambda d: d.name)
def test_the_converters_write_the_pinned_files(derived: models.Derived) -> None:
    """What setup-models checks when it makes a file, on the installed sources: the suite runs
    where the files are already made, so setup alone would not notice a converter that drifts."""
    data = models.make(derived, models.read_model(derived.source))
    assert data[4:8] == b"TFL3"
    assert hashlib.sha256(data).hexdigest() == derived.sha256


def test_each_converter_refuses_the_other_graph() -> None:
    with pytest.raises(ValueError, match="cls_8"):  # no YuNet heads
        yunet.convert(models.read_model(models.SFACE))
    with pytest.raises(ValueError, match="input scaling"):
        sface.convert(models.read_model(models.YUNET))


@pytest.mark.parametrize(
    "attributes",
    [
        {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [0, 0, 0, 0]},  # VALID at stride 1
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 0, 1, 1]},  # SAME-like at 2
        {"kernel_shape": [3, 3], "strides": [1, 2], "pads": [1, 1, 1, 1]},
        {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [2, 2]},
        {"kernel_shape": [5, 5], "strides": [2, 2], "pads": [2, 2, 2, 2]},
    ],
)
def test_unwritable_convolutions_are_refused(attributes: dict[str, Any]) -> None:
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="odd", **attributes)
    with pytest.raises(ValueError, match="unsupported convolution odd"):
        conv_geometry(node)


def test_convolutions_the_builder_writes() -> None:
    def conv(**attributes: Any) -> onnx.NodeProto:
        return onnx.helper.make_node("Conv", ["x", "w"], ["y"], **attributes)

    same = conv(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], group=8)
    pointwise = conv(kernel_shape=[1, 1], strides=[1, 1])
    halving = conv(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    assert [conv_geometry(n) for n in (same, pointwise, halving)] == [(1, 8), (1, 1), (2, 1)]


def test_the_runtime_loads_no_converter(photos_dir: Path) -> None:
    """An analysis with every attribute, in a fresh process, imports neither the converters nor
    what only they need (onnx, the flatbuffer writer, LiteRT's schema)."""
    script = (
        "import json, sys\n"
        "from facesearch.vision import get_analyzer\n"
        "analyzer = get_analyzer()\n"
        "analyzer.check_ready()\n"
        f"data = open({str(photos_dir / 'people/barack_obama/1.jpg')!r}, 'rb').read()\n"
        "faces = analyzer.analyze(data, attributes=True).faces\n"
        "print(json.dumps([len(faces), sorted(sys.modules)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    faces, loaded = json.loads(done.stdout)
    assert faces == 1
    assert "facesearch.vision.detector" in loaded and "facesearch.vision.embedder" in loaded
    setup_only = [
        name
        for name in loaded
        if name.startswith(("facesearch.vision.convert", "onnx", "flatbuffers"))
        or name == "ai_edge_litert.schema_py_generated"
    ]
    assert setup_only == []
