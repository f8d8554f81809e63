"""The jobs tables on both stores: claiming, heartbeats, take-over, giving up, expiry."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facesearch.store import Store, open_store
from facesearch.store.jobs import (
    BY_INDEX,
    BY_TIMESTAMP,
    FAILED,
    IN_PROGRESS,
    JOB_TTL_SECONDS,
    SUCCEEDED,
    WAITING,
    JobRecord,
    JobResult,
)

ACCOUNT = "000000000000"


@pytest.fixture
def jobs(store: str | None, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(store, tmp_path / "data")
    yield opened
    opened.close()


def new_job(job_id: str, token: str | None = None, account: str = ACCOUNT) -> JobRecord:
    return JobRecord(
        key=0,
        job_id=job_id,
        account_id=account,
        api="StartFaceDetection",
        status=WAITING,
        params={"Video": {"S3Object": {"Bucket": "b", "Name": job_id}}},
        region="us-east-1",
        client_token=token,
        request_hash=f"hash-{job_id}",
        created_at=0,
    )


def test_jobs_are_claimed_oldest_first_once_each(jobs: Store) -> None:
    for number in range(3):
        assert jobs.create_job(new_job(f"j{number}"), 20) is not None
    claimed = [jobs.claim_job("w", time.time() - 30, 3) for _ in range(4)]
    assert [job.job_id if job else None for job in claimed] == ["j0", "j1", "j2", None]
    first = claimed[0]
    assert first is not None
    assert (first.status, first.owner, first.attempts) == (IN_PROGRESS, "w", 1)
    assert not jobs.has_claimable_job(time.time() - 30)


def test_the_limit_counts_waiting_and_running_jobs_of_the_account(jobs: Store) -> None:
    assert jobs.create_job(new_job("a"), 2) is not None
    assert jobs.create_job(new_job("b"), 2) is not None
    assert jobs.create_job(new_job("c"), 2) is None
    assert jobs.create_job(new_job("d", account="111111111111"), 2) is not None
    claimed = jobs.claim_job("w", time.time() - 30, 3)
    assert claimed is not None
    assert jobs.create_job(new_job("c"), 2) is None  # running still counts
    assert jobs.finish_job(claimed, "w", SUCCEEDED) is not None
    assert jobs.create_job(new_job("c"), 2) is not None


def test_a_token_names_one_job(jobs: Store) -> None:
    first = jobs.create_job(new_job("a", token="t"), 20)
    again = jobs.create_job(new_job("b", token="t"), 20)
    assert first is not None and again is not None and again.job_id == "a"
    other = jobs.create_job(new_job("c", token="t", account="111111111111"), 20)
    assert other is not None and other.job_id == "c"


def test_results_page_in_either_order_and_only_for_the_owner(jobs: Store) -> None:
    jobs.create_job(new_job("a"), 20)
    job = jobs.claim_job("w", time.time() - 30, 3)
    assert job is not None
    results = [JobResult(rank, index, {"n": rank}) for rank, index in enumerate([1, 0, 1, 0], 1)]
    assert jobs.add_job_results(job, "w", results[:2])
    assert not jobs.add_job_results(job, "intruder", results[2:])
    assert jobs.add_job_results(job, "w", results[2:])
    assert [r.rank for r in jobs.job_results(job, BY_TIMESTAMP, [-1], 10)] == [1, 2, 3, 4]
    assert [r.rank for r in jobs.job_results(job, BY_TIMESTAMP, [2], 1)] == [3]
    assert [r.rank for r in jobs.job_results(job, BY_INDEX, [-1, -1], 10)] == [2, 4, 1, 3]
    assert [r.rank for r in jobs.job_results(job, BY_INDEX, [0, 4], 10)] == [1, 3]
    assert jobs.job_results(job, BY_TIMESTAMP, [0], 1)[0].payload == {"n": 1}


def test_a_silent_owner_is_replaced_and_cannot_write_after(jobs: Store) -> None:
    jobs.create_job(new_job("a"), 20)
    job = jobs.claim_job("dead", time.time() - 30, 3)
    assert job is not None
    assert jobs.add_job_results(job, "dead", [JobResult(1, 0, {})])
    assert jobs.claim_job("alive", time.time() - 30, 3) is None  # its heartbeat is fresh
    taken = jobs.claim_job("alive", time.time() + 1, 3)  # now it counts as stale
    assert taken is not None and (taken.owner, taken.attempts) == ("alive", 2)
    assert jobs.job_results(taken, BY_TIMESTAMP, [-1], 10) == []  # started over
    assert not jobs.heartbeat_job(job, "dead", 0.5, 10)
    assert not jobs.add_job_results(job, "dead", [JobResult(1, 0, {})])
    assert jobs.finish_job(job, "dead", SUCCEEDED) is None
    assert jobs.heartbeat_job(taken, "alive", 0.5, 10, {"Codec": "h264"})
    current = jobs.get_job(ACCOUNT, "a")
    assert current is not None
    assert (current.progress, current.frames, current.video_metadata) == (
        0.5,
        10,
        {"Codec": "h264"},
    )


def test_a_job_whose_owners_keep_dying_ends_failed(jobs: Store) -> None:
    jobs.create_job(new_job("a"), 20)
    for attempt in range(3):
        job = jobs.claim_job(f"w{attempt}", time.time() + 1, 3)
        assert job is not None and job.attempts == attempt + 1
    given_up: list[JobRecord] = []
    assert jobs.claim_job("w3", time.time() + 1, 3, gave_up=given_up.append) is None
    ended = jobs.get_job(ACCOUNT, "a")
    assert ended is not None and ended.status == FAILED
    assert ended.status_message and "interrupted 3 times" in ended.status_message
    # Handed over once stored, to publish its completion message.
    assert [(j.job_id, j.status, j.status_message) for j in given_up] == [
        ("a", FAILED, ended.status_message)
    ]


def test_a_released_job_waits_again_and_the_claim_does_not_count(jobs: Store) -> None:
    jobs.create_job(new_job("a"), 20)
    job = jobs.claim_job("w", time.time() - 30, 3)
    assert job is not None
    jobs.release_job(job, "w")
    again = jobs.claim_job("v", time.time() - 30, 3)
    assert again is not None and again.attempts == 1


def test_jobs_expire_after_7_days(jobs: Store) -> None:
    jobs.create_job(new_job("a"), 20)
    assert jobs.expire_jobs(time.time() - JOB_TTL_SECONDS) == 0
    assert jobs.expire_jobs(time.time() + 1) == 1
    assert jobs.get_job(ACCOUNT, "a") is None


def test_concurrent_claims_take_different_jobs(jobs: Store) -> None:
    count = 12
    for number in range(count):
        jobs.create_job(new_job(f"j{number}"), 20)
    taken: list[str] = []
    lock = threading.Lock()

    def claim(worker: int) -> None:
        while (job := jobs.claim_job(f"w{worker}", time.time() - 30, 3)) is not None:
            with lock:
                taken.append(job.job_id)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(f"j{n}" for n in range(count))


def test_counts_by_state(jobs: Store) -> None:
    for number in range(3):
        jobs.create_job(new_job(f"j{number}"), 20)
    job = jobs.claim_job("w", time.time() - 30, 3)
    assert job is not None
    jobs.finish_job(dataclasses.replace(job), None, FAILED, "no")
    assert jobs.job_counts() == {WAITING: 2, IN_PROGRESS: 0, SUCCEEDED: 0, FAILED: 1}
