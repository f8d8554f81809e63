"""Entry point of the ``facesearch`` program: it picks the part a command line is for, the
server (``serve``), the models' setup, the warm process or a Rekognition operation (cli/), so
that neither front end imports the other."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run ``facesearch``: ``setup-models``, ``serve``, ``warm`` or a Rekognition operation
    (in the warm process if one is running, see :mod:`facesearch.cli.warm`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["setup-models"]:
        from facesearch.vision.models import main as setup_models

        return setup_models(args[1:])
    if args[:1] == ["serve"]:
        from facesearch.server.main import main as serve

        return serve(args[1:])
    if args[:1] == ["warm"]:
        from facesearch.cli.warm import main as warm_main

        return warm_main(args[1:])
    from facesearch.cli import warm

    where = warm.place(args)
    if where is not None:
        try:
            status = warm.call(args, where)
        except warm.WarmError as error:
            sys.stderr.write(
                f"facesearch: the warm process: {error} (FACESEARCH_WARM=0 runs every command "
                "in its own process)\n"
            )
            return 255
        if status is not None:
            return status
    from facesearch.cli.driver import run

    status = run(args)
    if where is not None:
        warm.start(where)  # for the next command
    return status


if __name__ == "__main__":
    sys.exit(main())
