"""Slow and greedy clients against ``facesearch serve`` with its defaults (issue 13's measures).

Starts one server (embedded store in a temporary directory), builds a small collection, then:

1. slow heads and stalled bodies: 50 connections sending a header byte a second and 50 that
   announce ``Content-Length: 10485760`` and stall; how many are still open after 15 and 100 s
   (``--quick``: 15 s only), and /health latency meanwhile;
2. an endless header (``X-Pad:`` then 1 MiB blocks): how much the server takes before cutting it
   off, /health latency during it, RSS before and after;
3. 16 clients sending a 9000x9000 PNG (within the 5 MiB limit) to DetectFaces for 30 s: peak and
   final RSS, the answers they get, and a healthy client's SearchUsersByImage latency during the
   flood against the same client's latency before it (the baseline, same run);
4. SIGTERM while an upload is stalled: seconds until the server has exited.

Prints the load average with the figures. ``--smoke``: waits of 2 s, and 2 clients sending a
1500x1500 PNG for 2 s, figures meaningless.

    .venv/bin/python benchmarks/hostile.py [--photos DIR] [--quick | --smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import numpy as np
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

DEFAULT_PHOTOS = Path(
    os.environ.get("FACESEARCH_TEST_PHOTOS")
    or Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "faces"
)
FACESEARCH = Path(sys.executable).with_name("facesearch")
KEY_ID, SECRET = "hostile-key", "hostile-secret"


def rss_mib(pid: int) -> float:
    """The resident set size of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def health_ms(url: str) -> float:
    """One /health round trip in ms (inf when it takes over a second)."""
    started = time.perf_counter()
    try:
        urllib.request.urlopen(url + "/health", timeout=1).close()
    except OSError:
        return float("inf")
    return (time.perf_counter() - started) * 1000


def still_open(sock: socket.socket) -> bool:
    """Whether the server has not closed this connection (its answer, if any, is read)."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def client(url: str):
    return boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 0}, read_timeout=120),
    )


def slow_clients(url: str, port: int, waits: list[float]) -> None:
    socks = []
    for i in range(100):
        sock = socket.create_connection(("127.0.0.1", port))
        if i < 50:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        else:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n{")
        socks.append(sock)
    started = time.monotonic()
    probes = []
    for wait in waits:
        while time.monotonic() - started < wait:
            for sock in socks[:50]:
                with contextlib.suppress(OSError):
                    sock.send(b"a")  # one header byte a second
            probes.append(health_ms(url))
            time.sleep(1)
        heads = sum(still_open(s) for s in socks[:50])
        bodies = sum(still_open(s) for s in socks[50:])
        print(f"  after {wait:.0f} s: slow heads open {heads}/50, stalled bodies open {bodies}/50")
    print(f"  /health during: p50 {statistics.median(probes):.1f} ms, max {max(probes):.1f} ms")
    for sock in socks:
        sock.close()


def endless_header(url: str, port: int, pid: int) -> None:
    before = rss_mib(pid)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Pad: ")
    block, sent, probes = b"p" * (1 << 20), 0, []
    try:
        for _ in range(96):
            sock.sendall(block)
            sent += len(block)
            if sent % (8 << 20) == 0:
                probes.append(health_ms(url))
    except OSError:
        pass
    probes.append(health_ms(url))
    sock.close()
    time.sleep(1)
    print(
        f"  cut off after {sent / (1 << 20):.0f} MiB sent (96 offered); /health max "
        f"{max(probes):.1f} ms; RSS {before:.0f} -> {rss_mib(pid):.0f} MiB"
    )


def big_png(side: int) -> bytes:
    """A side x side PNG (just under 5 MiB at 9000): smooth shading with enough noise to weigh
    as a photo."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side].astype(np.uint16)
    base = ((x // 7 + y // 11) % 256).astype(np.uint8)
    noisy = base + (rng.random(base.shape) < 0.012).astype(np.uint8) * 37
    buf = io.BytesIO()
    Image.fromarray(np.stack([noisy, base, base.T], -1)).save(buf, "PNG", compress_level=9)
    return buf.getvalue()


def image_flood(url: str, pid: int, probe: bytes, seconds: float, clients: int, side: int) -> None:
    png = big_png(side)
    search = client(url)

    def search_ms() -> float:
        started = time.perf_counter()
        search.search_users_by_image(CollectionId="hostile", Image={"Bytes": probe})
        return (time.perf_counter() - started) * 1000

    baseline = [search_ms() for _ in range(10)]
    before = rss_mib(pid)
    answers: dict[str, int] = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def flood() -> None:
        greedy = client(url)
        while time.monotonic() < stop:
            try:
                greedy.detect_faces(Image={"Bytes": png})
                code = "OK"
            except ClientError as error:
                code = error.response["Error"]["Code"]
            with lock:
                answers[code] = answers.get(code, 0) + 1

    threads = [threading.Thread(target=flood) for _ in range(clients)]
    for thread in threads:
        thread.start()
    peak, during = before, []
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss_mib(pid))
        during.append(search_ms())
    time.sleep(2)
    print(f"  PNG {len(png) / 1e6:.1f} MB, answers {answers}")
    print(f"  RSS {before:.0f} MiB before, peak {peak:.0f}, after {rss_mib(pid):.0f}")
    calm, busy = statistics.median(baseline), statistics.median(during)
    print(
        f"  healthy SearchUsersByImage p50 {calm:.0f} ms before, {busy:.0f} ms during "
        f"(x{busy / calm:.1f}), max {max(during):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--quick", action="store_true", help="shorter waits and flood")
    parser.add_argument("--smoke", action="store_true", help="a few seconds, a small flood")
    args = parser.parse_args()
    waits = [2] if args.smoke else [15] if args.quick else [15, 100]
    flood_seconds = 2 if args.smoke else 15 if args.quick else 30
    clients, side = (2, 1500) if args.smoke else (16, 9000)  # the flood's, and its PNG's size
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "FACESEARCH_ACCESS_KEY_ID": KEY_ID,
        "FACESEARCH_SECRET_ACCESS_KEY": SECRET,
    }
    with tempfile.TemporaryDirectory() as data_dir:
        command = [str(FACESEARCH), "serve", "--port", str(port), "--data-dir", data_dir]
        server = subprocess.Popen([*command, "--no-access-log"], env=env, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while health_ms(url) == float("inf"):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("server did not start")
                time.sleep(0.2)
            rekognition = client(url)
            rekognition.create_collection(CollectionId="hostile")
            people = sorted((args.photos / "people").iterdir())[:5]
            for person in people:
                face = rekognition.index_faces(
                    CollectionId="hostile",
                    Image={"Bytes": sorted(person.iterdir())[0].read_bytes()},
                    MaxFaces=1,
                )["FaceRecords"][0]["Face"]["FaceId"]
                rekognition.create_user(CollectionId="hostile", UserId=person.name)
                rekognition.associate_faces(
                    CollectionId="hostile", UserId=person.name, FaceIds=[face]
                )
            probe = sorted(people[0].iterdir())[1].read_bytes()
            print(f"load average before: {os.getloadavg()}")
            print("1. slow heads and stalled bodies")
            slow_clients(url, port, waits)
            print("2. endless header")
            endless_header(url, port, server.pid)
            print(f"3. {clients} clients sending {side}x{side} PNGs")
            image_flood(url, server.pid, probe, flood_seconds, clients, side)
            print("4. SIGTERM with an upload stalled")
            stalled = socket.create_connection(("127.0.0.1", port))
            stalled.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n{")
            time.sleep(0.5)
            started = time.monotonic()
            server.send_signal(signal.SIGTERM)
            code = server.wait(300)
            print(f"  exited with {code} after {time.monotonic() - started:.1f} s")
            stalled.close()
            print(f"load average after: {os.getloadavg()}")
        finally:
            if server.poll() is None:
                server.kill()


if __name__ == "__main__":
    main()
