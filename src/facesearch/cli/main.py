"""Entry point of the ``facesearch`` command."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run ``facesearch``: ``setup-models``, ``serve`` or a Rekognition operation."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["setup-models"]:
        from facesearch.vision.models import main as setup_models

        return setup_models(args[1:])
    if args[:1] == ["serve"]:
        from facesearch.server.main import main as serve

        return serve(args[1:])
    from facesearch.cli.driver import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
