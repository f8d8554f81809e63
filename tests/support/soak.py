"""A mixed load of boto3 clients on a ``facesearch serve`` process: tests/server/test_soak.py
runs it for 30 s, benchmarks/soak.py for minutes."""

from __future__ import annotations

import math
import os
import random
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# Rekognition's answers to "too much at once": boto3 retries them, and a caller may get them.
THROTTLING = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException"})
# Relative frequency of each pick: mostly searches and lists; "write" is the next step of the
# client's own enrol-and-remove cycle (CHURN), so every write operation runs equally often.
READ_MIX = {
    "SearchUsersByImage": 16,
    "SearchFacesByImage": 12,
    "SearchUsers": 14,
    "ListFaces": 10,
    "ListUsers": 10,
    "DescribeCollection": 12,
}
WRITE_SHARE = 26
CHURN = (
    "IndexFaces",
    "CreateUser",
    "AssociateFaces",
    "DisassociateFaces",
    "DeleteFaces",
    "DeleteUser",
)
MIX_OPERATIONS = (*READ_MIX, *CHURN)
SOAK_COLLECTION = "soak"


def rss_kib(pid: int) -> int:
    """A process's resident set size (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class LoadReport:
    """What a mixed load saw: calls, successes, latencies and errors by operation, the retries
    boto3 made, and samples of the server's RSS and the load average over time."""

    seconds: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    successes: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (operation, code)
    messages: dict[str, str] = field(default_factory=dict)  # code -> one message
    retries: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds in, KiB)
    load: list[tuple[float, tuple[float, float, float]]] = field(default_factory=list)
    client_cpu: float = 0.0
    server_cpu: float = 0.0

    @property
    def failures(self) -> Counter[tuple[str, str]]:
        """Errors other than throttling."""
        return Counter({key: n for key, n in self.errors.items() if key[1] not in THROTTLING})

    @property
    def throttled(self) -> int:
        return sum(n for (_, code), n in self.errors.items() if code in THROTTLING)

    def rss_growth(self, warmup: float) -> tuple[int, int, float]:
        """(RSS after warm-up, RSS at the end, growth in %), in KiB: each the median of the
        samples in a window as long as a tenth of the run (at least 3 samples), so that one
        sample taken while a large image is decoded does not decide it."""
        after = [kib for t, kib in self.rss if t >= warmup]
        width = max(3, len(after) // 10)
        start, end = statistics.median(after[:width]), statistics.median(after[-width:])
        return round(start), round(end), 100 * (end - start) / start

    def summary(self, warmup: float) -> str:
        """The figures as a table, load average and RSS included."""
        lines = [
            f"{sum(self.calls.values())} calls in {self.seconds:.0f} s "
            f"({sum(self.calls.values()) / max(self.seconds, 1e-9):.1f}/s); boto3 retries: "
            f"{self.retries}; throttled (allowed): {self.throttled}; other errors: "
            f"{sum(self.failures.values())}",
            f"{'operation':<20} {'calls':>6} {'ok':>6} {'p50 ms':>8} {'p99 ms':>8}",
        ]
        for operation in MIX_OPERATIONS:
            times = self.latencies.get(operation) or [math.nan]
            lines.append(
                f"{operation:<20} {self.calls[operation]:>6} {self.successes[operation]:>6} "
                f"{percentile(times, 50) * 1000:>8.1f} {percentile(times, 99) * 1000:>8.1f}"
            )
        for (operation, code), count in sorted(self.errors.items()):
            lines.append(f"error {operation} {code} x{count}: {self.messages.get(code, '')}")
        if self.rss:
            start, end, growth = self.rss_growth(warmup)
            lines.append(
                f"server RSS: {start / 1024:.1f} MiB after {warmup:.0f} s warm-up, "
                f"{end / 1024:.1f} MiB at the end ({growth:+.1f} %), peak "
                f"{max(kib for _, kib in self.rss) / 1024:.1f} MiB"
            )
        if self.load:
            averages = [one for _, (one, _, _) in self.load]
            lines.append(
                f"load average (1 min): mean {statistics.mean(averages):.2f}, max "
                f"{max(averages):.2f}, at the end {self.load[-1][1]} on {os.cpu_count()} cpus"
            )
        lines.append(
            f"CPU: server {self.server_cpu:.0f} s, clients {self.client_cpu:.0f} s "
            f"over {self.seconds:.0f} s"
        )
        return "\n".join(lines)


@dataclass
class Population:
    """The collection every client searches: enrolled users and faces, probe photos, and the
    photos the clients' write cycles enrol and remove again."""

    users: list[str]
    faces: list[str]
    probes: list[bytes]
    enrol: list[bytes]


def soak_client(url: str, key_id: str, secret: str) -> Any:
    """A boto3 client as production code would configure it: standard retries."""
    session = boto3.session.Session()  # one per client: creating clients is not thread-safe
    return session.client(
        "rekognition",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"mode": "standard"}, read_timeout=120),
    )


def populate(client: Any, photos: Path, people: int = 10) -> Population:
    """Create SOAK_COLLECTION with one user per person (two photos each); the rest of each
    person's photos become probes, and a photo of each more person the churn's photos."""
    client.create_collection(CollectionId=SOAK_COLLECTION)
    folders = sorted(p for p in (photos / "people").iterdir() if p.is_dir())
    population = Population([], [], [], [])
    for folder in folders[:people]:
        files = sorted(folder.iterdir())
        user, faces = folder.name, []
        for image in files[:2]:
            indexed = client.index_faces(
                CollectionId=SOAK_COLLECTION, Image={"Bytes": image.read_bytes()}, MaxFaces=1
            )
            faces += [record["Face"]["FaceId"] for record in indexed["FaceRecords"]]
        if faces:
            client.create_user(CollectionId=SOAK_COLLECTION, UserId=user)
            client.associate_faces(CollectionId=SOAK_COLLECTION, UserId=user, FaceIds=faces)
            population.users.append(user)
            population.faces += faces
        population.probes += [image.read_bytes() for image in files[2:4]]
    population.enrol = [sorted(f.iterdir())[0].read_bytes() for f in folders[people:]]
    population.enrol = population.enrol or population.probes
    return population


class _Churn:
    """One client's write cycle: enrol a face, make a user of it, associate, disassociate,
    delete the face, delete the user; it advances only when a step succeeds, so that a
    throttled step is tried again and the collection stays the same size."""

    def __init__(self, client_number: int, population: Population, rng: random.Random) -> None:
        self.prefix = f"churn-{client_number}"
        self.population, self.rng = population, rng
        self.step, self.cycle, self.face_id = 0, 0, ""

    def call(self) -> tuple[str, dict[str, Any]]:
        operation = CHURN[self.step]
        user: dict[str, Any] = {
            "CollectionId": SOAK_COLLECTION,
            "UserId": f"{self.prefix}-{self.cycle}",
        }
        params: dict[str, Any] = {
            "IndexFaces": {
                "CollectionId": SOAK_COLLECTION,
                "Image": {"Bytes": self.rng.choice(self.population.enrol)},
                "ExternalImageId": self.prefix,
                "MaxFaces": 1,
            },
            "CreateUser": user,
            "AssociateFaces": {**user, "FaceIds": [self.face_id]},
            "DisassociateFaces": {**user, "FaceIds": [self.face_id]},
            "DeleteFaces": {"CollectionId": SOAK_COLLECTION, "FaceIds": [self.face_id]},
            "DeleteUser": user,
        }[operation]
        return operation, params

    def done(self, result: dict[str, Any] | None) -> None:
        """Advance after a success (``result``); after a failure other than throttling
        (``None``), start a new cycle with new names."""
        if result is None:
            self.step, self.cycle = 0, self.cycle + 1
            return
        if CHURN[self.step] == "IndexFaces":
            records = result["FaceRecords"]
            if not records:
                return  # no face found: enrol again
            self.face_id = records[0]["Face"]["FaceId"]
        self.step = (self.step + 1) % len(CHURN)
        self.cycle += self.step == 0


def _read(operation: str, population: Population, rng: random.Random) -> dict[str, Any]:
    params: dict[str, Any] = {"CollectionId": SOAK_COLLECTION}
    if operation in ("SearchUsersByImage", "SearchFacesByImage"):
        params["Image"] = {"Bytes": rng.choice(population.probes)}
    elif operation == "SearchUsers":
        if rng.random() < 0.5:
            params["UserId"] = rng.choice(population.users)
        else:
            params["FaceId"] = rng.choice(population.faces)
    elif operation in ("ListFaces", "ListUsers"):
        params["MaxResults"] = rng.choice([5, 20, 100])
    return params


def run_mixed_load(
    url: str,
    key_id: str,
    secret: str,
    population: Population,
    *,
    clients: int,
    seconds: float,
    server_pid: int | None = None,
    sample_every: float = 2.0,
) -> LoadReport:
    """``clients`` threads, one boto3 client each, calling the mix for ``seconds``; the
    server's RSS and the load average sampled every ``sample_every`` seconds meanwhile.

    Threads, not processes: on a small machine the clients' CPU should stay a minority next to
    the server's (the GIL caps all 16 at one core), and the report shows both CPU times.
    """
    report = LoadReport()
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + seconds
    stop = threading.Event()
    operations = [*READ_MIX, "write"]
    weights = [*READ_MIX.values(), WRITE_SHARE]
    boto_clients = [soak_client(url, key_id, secret) for _ in range(clients)]
    cpu_before = time.process_time()
    server_cpu_before = cpu_seconds(server_pid) if server_pid else 0.0

    def sample() -> None:
        while not stop.is_set():
            now = time.monotonic() - started
            if server_pid:
                report.rss.append((now, rss_kib(server_pid)))
            report.load.append((now, os.getloadavg()))
            stop.wait(sample_every)

    def work(number: int) -> None:
        client, rng = boto_clients[number], random.Random(number)
        churn = _Churn(number, population, rng)
        while time.monotonic() < deadline:
            pick = rng.choices(operations, weights)[0]
            writing = pick == "write"
            operation, params = churn.call() if writing else (pick, _read(pick, population, rng))
            began = time.perf_counter()
            try:
                result = getattr(client, xform_name(operation))(**params)
                code = None
            except ClientError as error:
                result, code = None, error.response["Error"]["Code"]
                message = error.response["Error"].get("Message", "")
            except BotoCoreError as error:  # the connection failed: a failure as well
                result, code, message = None, type(error).__name__, str(error)
            elapsed = time.perf_counter() - began
            with lock:
                report.calls[operation] += 1
                if code is None:
                    report.successes[operation] += 1
                    report.latencies[operation].append(elapsed)
                    report.retries += result["ResponseMetadata"].get("RetryAttempts", 0)
                else:
                    report.errors[operation, code] += 1
                    report.messages.setdefault(code, message[:200])
            if writing and (code is None or code not in THROTTLING):
                churn.done(result)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    workers = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    sampler.join()
    report.seconds = time.monotonic() - started
    report.client_cpu = time.process_time() - cpu_before
    if server_pid:
        report.server_cpu = cpu_seconds(server_pid) - server_cpu_before
    return report
