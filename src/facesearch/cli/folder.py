"""``facesearch index-faces --image-folder DIR``: enroll every photo of a folder in one command.

Each ``.jpg``/``.jpeg``/``.png`` file in the folder (and its subfolders with ``--recursive``) is
indexed with one IndexFaces call, its path in the folder (sanitized to the model's
ExternalImageId pattern, folders joined by ``:``) as ExternalImageId. Photos whose
ExternalImageId the collection already holds are skipped, so a run that was interrupted (Ctrl-C
stops after the photos in progress) resumes where it stopped. The results are merged into one
IndexFaces-shaped response, so ``--output`` and ``--query`` work as usual; each UnindexedFaces
entry also names its photo's ExternalImageId. A photo the service rejects is reported on stderr,
the others go on, and the exit status is 254. With the progress bar, a summary ends the run.
``--user-from-folder`` associates each photo's face with the user named by its folder.
"""

from __future__ import annotations

import re
import sys
import time
from argparse import Namespace
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from awscli.arguments import CustomArgument
from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.session import Session

from facesearch.cli.arguments import UsageError
from facesearch.cli.embedded import Transport
from facesearch.cli.output import display
from facesearch.model import service_model

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
EXIT_SERVICE = 254


def register(session: Session, transport: Transport) -> None:
    """Add ``--image-folder`` and ``--progress``/``--no-progress`` to ``index-faces``."""

    def add_arguments(argument_table: dict[str, Any], **_: Any) -> None:
        CustomArgument(
            "image-folder",
            help_text="<p>facesearch only: index every .jpg, .jpeg and .png photo directly in "
            "this folder, one IndexFaces call each, with the file name (characters outside "
            "<code>[a-zA-Z0-9_.\\-:]</code> replaced by <code>_</code>) as ExternalImageId. "
            "Replaces <code>--image</code>, <code>--image-bytes</code> and "
            "<code>--external-image-id</code>. The results are merged into one response.</p>",
            no_paramfile=True,
        ).add_to_arg_table(argument_table)
        CustomArgument(
            "jobs",
            help_text="<p>With --image-folder: how many IndexFaces calls run at once (default "
            "1). Against a server of several processes (<code>facesearch serve --workers "
            "N</code>, or several servers behind one address) this spreads the enrolment over "
            "them.</p>",
            cli_type_name="integer",
        ).add_to_arg_table(argument_table)
        for name, text in (
            ("recursive", "Also index the photos in the folder's subfolders."),
            (
                "progress",
                "Show a progress bar and a closing summary on stderr (default: when stderr is a "
                "terminal).",
            ),
            ("no-progress", "Never show the progress bar."),
            (
                "user-from-folder",
                "Associate each photo's indexed face with the user named by the folder it is in "
                "(created if missing; photos directly in the folder belong to no user). A photo "
                "in which more than one face was indexed is not associated: give --max-faces 1 "
                "to index only its largest face.",
            ),
        ):
            CustomArgument(
                name, help_text=f"<p>With --image-folder: {text}</p>", action="store_true"
            ).add_to_arg_table(argument_table)

    def run(
        call_parameters: dict[str, Any],
        parsed_args: Namespace,
        parsed_globals: Namespace,
        event_name: str,
        **_: Any,
    ) -> int | None:
        folder = getattr(parsed_args, "image_folder", None)
        skeleton = getattr(parsed_args, "generate_cli_skeleton", None)
        if not event_name.endswith(".index-faces") or folder is None or skeleton:
            return None
        started = time.monotonic()
        root = Path(folder).expanduser()
        photos = _photos(root, call_parameters, parsed_args.recursive)
        jobs = _jobs(parsed_args.jobs)
        show = not parsed_args.no_progress and (parsed_args.progress or sys.stderr.isatty())
        client = transport.client(parsed_globals)
        collection_id = call_parameters["CollectionId"]
        known = _indexed_ids(client, collection_id)
        todo = {name: path for name, path in photos.items() if name not in known}
        progress = _Progress(len(todo), show)
        users = _Users(client, collection_id, root) if parsed_args.user_from_folder else None
        try:
            merged, tally = _index_all(client, call_parameters, todo, progress, jobs, root, users)
        except _Interrupted as stop:
            sys.stderr.write(
                f"Interrupted: {stop.finished} of {_photo_count(len(todo))} indexed. Run the same "
                "command again to index the rest (photos already in the collection are "
                "skipped).\n"
            )
            raise KeyboardInterrupt from None
        tally["already indexed"] = len(photos) - len(todo)
        display(session, parsed_globals, "IndexFaces", merged)
        if show:
            counts = ", ".join(
                f"{count} {'error' if what == 'errors' and count == 1 else what}"
                for what, count in tally.items()
            )
            sys.stderr.write(
                f"{_photo_count(len(photos))}: {counts}; {time.monotonic() - started:.1f} s\n"
            )
        return EXIT_SERVICE if tally["errors"] else 0

    # botocore-stubs type a handler as taking **kwargs only; botocore passes these by name.
    session.register(
        "building-argument-table.rekognition.index-faces",
        add_arguments,  # type: ignore[arg-type]
    )
    # On the same event name as --cli-input-json's handler, and last, so its values are merged.
    session.get_component("event_emitter").register_last("calling-command.*", run)


def _photo_count(count: int) -> str:
    return f"{count} photo" if count == 1 else f"{count} photos"


def _jobs(value: str | None) -> int:
    """``--jobs``: how many calls at once (1 when absent)."""
    try:
        jobs = int(value) if value is not None else 1
    except ValueError:
        raise UsageError(f"--jobs must be a whole number, not {value!r}") from None
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    return jobs


def external_image_id(relative: Path) -> str:
    """The ExternalImageId for a photo: its path in the folder (folders joined by ``:``), fitted
    to the model's pattern and length."""
    shape = service_model().shape_for("ExternalImageId")
    name = ":".join(relative.parts)
    return re.sub(r"[^a-zA-Z0-9_.\-:]", "_", name)[: shape.metadata["max"]]


def _photos(root: Path, call_parameters: dict[str, Any], recursive: bool) -> dict[str, Path]:
    """The folder's photos by ExternalImageId, in path order."""
    for member in ("Image", "ExternalImageId"):
        if member in call_parameters:
            raise UsageError(f"--image-folder cannot be used with --{xform_name(member, '-')}")
    if not root.is_dir():
        raise UsageError(f"--image-folder: not a folder: {root}")
    found = sorted(
        p
        for p in (root.rglob("*") if recursive else root.iterdir())
        if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
    )
    if not found:
        raise UsageError(f"--image-folder: no .jpg, .jpeg or .png photos in {root}")
    photos: dict[str, Path] = {}
    for path in found:
        name = external_image_id(path.relative_to(root))
        if name in photos:
            raise UsageError(f"--image-folder: {photos[name]} and {path} would share the "
                             f"ExternalImageId {name}; rename one")  # fmt: skip
        photos[name] = path
    return photos


def _indexed_ids(client: Any, collection_id: str) -> set[str]:
    """The ExternalImageIds the collection already holds (to resume an interrupted run)."""
    pages = client.get_paginator("list_faces").paginate(CollectionId=collection_id)
    try:
        return {
            face["ExternalImageId"]
            for page in pages
            for face in page["Faces"]
            if "ExternalImageId" in face
        }
    except ClientError as error:
        # The user asked for IndexFaces: an unknown collection is that operation's error.
        raise ClientError(error.response, "IndexFaces") from None


class _Interrupted(Exception):
    """Ctrl-C: the photos in progress were finished, the others not started."""

    def __init__(self, finished: int) -> None:
        super().__init__(finished)
        self.finished = finished


class _Users:
    """``--user-from-folder``: the user a photo belongs to, created on first use."""

    def __init__(self, client: Any, collection_id: str, root: Path) -> None:
        self._client = client
        self._collection_id = collection_id
        self._root = root
        self._ready: set[str] = set()

    def user_id(self, photo: Path) -> str | None:
        """The UserId of the folder the photo is in, fitted to the model's pattern and length;
        None for a photo directly in the enrolled folder."""
        folder = photo.parent.relative_to(self._root)
        if not folder.parts:
            return None
        shape = service_model().shape_for("UserId")
        return re.sub(r"[^a-zA-Z0-9_.\-:]", "_", folder.name)[: shape.metadata["max"]]

    def enrol(self, photo: Path, records: list[dict[str, Any]]) -> str | None:
        """Associate a photo's one indexed face with its folder's user; what went wrong, if
        anything, to report."""
        user_id = self.user_id(photo)
        if user_id is None or not records:
            return None
        if len(records) > 1:
            return (
                f"{len(records)} faces indexed, not associated with user {user_id} (give "
                "--max-faces 1 to index only the largest face)"
            )
        try:
            self._associate(user_id, [records[0]["Face"]["FaceId"]])
        except ClientError as error:
            return f"not associated with user {user_id}: {error}"
        return None

    def _associate(self, user_id: str, face_ids: list[str]) -> None:
        if user_id not in self._ready:
            try:
                self._client.create_user(CollectionId=self._collection_id, UserId=user_id)
            except ClientError as error:
                if error.response["Error"].get("Code") != "ConflictException":
                    raise
            self._ready.add(user_id)
        self._client.associate_faces(
            CollectionId=self._collection_id, UserId=user_id, FaceIds=face_ids
        )


def _index_all(
    client: Any,
    params: dict[str, Any],
    photos: dict[str, Path],
    progress: _Progress,
    jobs: int,
    root: Path,
    users: _Users | None,
) -> tuple[dict[str, Any], dict[str, int]]:
    """IndexFaces for each photo, ``jobs`` at a time; merged in the photos' order, with a tally
    of what became of the photos. Ctrl-C raises _Interrupted once the calls under way end."""

    def index(name: str, photo: Path) -> dict[str, Any]:
        return client.index_faces(
            **params, Image={"Bytes": photo.read_bytes()}, ExternalImageId=name
        )

    merged: dict[str, Any] = {"FaceRecords": [], "UnindexedFaces": []}
    tally = {"indexed": 0, "with no face indexed": 0, "errors": 0}
    pool = ThreadPoolExecutor(jobs)  # botocore clients are safe to share across threads
    calls = [pool.submit(index, name, photo) for name, photo in photos.items()]
    try:
        for done, (name, photo, call) in enumerate(
            zip(photos, photos.values(), calls, strict=True)
        ):
            progress.show(done, str(photo.relative_to(root)))
            try:
                result = call.result()
            except (ClientError, OSError) as error:
                tally["errors"] += 1
                progress.clear()
                sys.stderr.write(f"{photo}: {error}\n")
                continue
            records = result.get("FaceRecords", [])
            problem = users.enrol(photo, records) if users is not None else None
            if problem is not None:
                tally["errors"] += 1
                progress.clear()
                sys.stderr.write(f"{photo}: {problem}\n")
            tally["indexed" if records else "with no face indexed"] += 1
            merged["FaceRecords"] += records
            merged["UnindexedFaces"] += [
                {**face, "ExternalImageId": name} for face in result.get("UnindexedFaces", [])
            ]
            if "FaceModelVersion" in result:
                merged["FaceModelVersion"] = result["FaceModelVersion"]
    except KeyboardInterrupt:
        # Stop after the photos under way: a photo cut off in the middle would be indexed
        # anyway (the call is in flight) but missing from the output.
        pool.shutdown(wait=True, cancel_futures=True)
        progress.clear()
        raise _Interrupted(sum(c.done() and not c.cancelled() for c in calls)) from None
    pool.shutdown()
    progress.show(len(photos), "")
    progress.finish()
    return merged, tally


class _Progress:
    """A one-line progress bar on stderr; does nothing when disabled."""

    WIDTH = 30

    def __init__(self, total: int, enabled: bool, stream: TextIO | None = None) -> None:
        self._total = total
        self._enabled = enabled
        self._stream = stream or sys.stderr

    def show(self, done: int, name: str) -> None:
        if not self._enabled:
            return
        filled = self.WIDTH * done // max(self._total, 1)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self._stream.write(f"\r\x1b[K[{bar}] {done}/{self._total} {name}")
        self._stream.flush()

    def clear(self) -> None:
        if self._enabled:
            self._stream.write("\r\x1b[K")

    def finish(self) -> None:
        if self._enabled:
            self._stream.write("\n")
            self._stream.flush()
