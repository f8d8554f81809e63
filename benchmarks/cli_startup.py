"""Wall time of one ``facesearch`` command, and where it goes.

Runs each command REPEAT times as a fresh process (as a user's shell does) and prints the median
wall time: ``facesearch --version`` (start-up alone), ``list-collections`` and
``search-users-by-image`` on the embedded store, each in its own process (``FACESEARCH_WARM=0``)
and through a warm process (started first, facesearch/cli/warm.py), and, as the baseline of the
same run, the real AWS CLI's ``aws --version``.
Then, in fresh processes, the embedded search's parts: importing the CLI, the service and the
analyser; reading and verifying the models and building the networks (the first analysis less a
warm one); one warm analysis.

    .venv/bin/python benchmarks/cli_startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from photoset import FACES

BIN = Path(sys.executable).parent
PHOTO = FACES / "people" / "barack_obama" / "2.jpg"
PARTS = """
import time
t0 = time.perf_counter()
import facesearch.cli.driver
t1 = time.perf_counter()
import facesearch.service
t2 = time.perf_counter()
from facesearch.vision.analyzer import Analyzer
t3 = time.perf_counter()
analyzer = Analyzer()
photo = open({photo!r}, "rb").read()
analyzer.analyze(photo).faces[0].embedding  # reads the models it needs, builds the networks
t4 = time.perf_counter()
analyzer.analyze(photo).faces[0].embedding
t5 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, (t4 - t3) - (t5 - t4), t5 - t4)
"""


def wall(command: list[str], env: dict[str, str], repeat: int) -> float:
    """Median wall seconds of ``command`` run ``repeat`` times (it must succeed)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def start_warm(facesearch: list[str], env: dict[str, str]) -> None:
    """Start a warm process (a first command does) and wait until it answers."""
    subprocess.run([*facesearch, "list-collections"], env=env, check=True, capture_output=True)
    for _ in range(600):
        status = subprocess.run([*facesearch, "warm", "status"], env=env, check=True,
                                capture_output=True, text=True).stdout  # fmt: skip
        if status.startswith("{"):
            return
        time.sleep(0.1)
    raise RuntimeError("no warm process started")


def main() -> None:
    """Print the wall times and the parts of an embedded search."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    repeat = parser.parse_args().repeat
    print(f"load average {os.getloadavg()[0]:.2f}; median of {repeat} runs, seconds")
    facesearch = [str(BIN / "facesearch")]
    with tempfile.TemporaryDirectory() as data, tempfile.TemporaryDirectory(dir="/tmp") as run:
        own = dict(os.environ) | {"FACESEARCH_WARM": "0"}
        warm = dict(os.environ) | {"FACESEARCH_WARM": "1", "XDG_RUNTIME_DIR": run}
        embedded = ["--data-dir", data]
        subprocess.run([*facesearch, "create-collection", "--collection-id", "c", *embedded],
                       env=own, check=True, capture_output=True)  # fmt: skip
        commands = {
            "facesearch --version": [*facesearch, "--version"],
            "facesearch list-collections (embedded)": [
                *facesearch, "list-collections", *embedded],
            "facesearch search-users-by-image (embedded)": [
                *facesearch, "search-users-by-image", "--collection-id", "c",
                "--image-bytes", f"fileb://{PHOTO}", *embedded],
        }  # fmt: skip
        for label, command in commands.items():
            print(f"  {label + ', own process':60} {wall(command, own, repeat):6.2f}")
        start_warm(facesearch, warm)
        for label, command in commands.items():
            print(f"  {label + ', warm process':60} {wall(command, warm, repeat):6.2f}")
        subprocess.run([*facesearch, "warm", "stop"], env=warm, check=True, capture_output=True)
        aws = [str(BIN / "aws"), "--version"]
        print(f"  {'aws --version (baseline)':60} {wall(aws, own, repeat):6.2f}")
    parts = [
        [float(v) for v in subprocess.run(
            [sys.executable, "-c", PARTS.format(photo=str(PHOTO))], check=True,
            capture_output=True, text=True).stdout.split()]
        for _ in range(repeat)
    ]  # fmt: skip
    names = ("import CLI (awscli, botocore)", "import service", "import analyser (cv2...)",
             "read models, build networks", "one analysis (warm)")  # fmt: skip
    print("parts of an embedded search, medians:")
    for i, name in enumerate(names):
        print(f"  {name:48} {statistics.median(p[i] for p in parts):6.3f}")


if __name__ == "__main__":
    main()
