"""Help pages: awscli's, generated from the service model, shown as plain text.

awscli renders help through groff and always pipes it to a pager. Here the page is rendered with
awscli's own docutils text writer (no groff needed), names ``facesearch`` instead of
``aws rekognition``, and goes through a pager only on a terminal and without ``--no-cli-pager``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from argparse import Namespace
from typing import Any

from awscli.bcdoc.textwriter import TextWriter
from awscli.help import HelpCommand, PagingHelpRenderer
from awscli.utils import ignore_ctrl_c
from docutils.core import publish_string


class TextHelpRenderer(PagingHelpRenderer):
    """Renders ReST help as plain text, paged with ``$MANPAGER``/``$PAGER`` (``less -R``)."""

    PAGER = "less -R"

    def __init__(self, page: bool) -> None:
        super().__init__(output_stream=sys.stdout)
        self._page = page

    def _convert_doc_content(self, contents: bytes) -> bytes:
        contents = contents.replace(b"aws rekognition", b"facesearch")
        return publish_string(
            contents,
            writer=TextWriter(),
            settings_overrides=self._DEFAULT_DOCUTILS_SETTINGS_OVERRIDES,
        )

    def _send_output_to_pager(self, output: bytes) -> None:
        pager = self.get_pager_cmdline()
        if self._page and sys.stdout.isatty() and pager and shutil.which(pager[0]):
            with ignore_ctrl_c():
                subprocess.run(pager, input=output, check=False)
            return
        self.output_stream.write(output.decode("utf-8"))
        self.output_stream.flush()


class _RenamedHelp:
    """Wraps an awscli help command so that it renders with :class:`TextHelpRenderer`."""

    def __init__(self, command: HelpCommand) -> None:
        self._command = command

    def __call__(self, args: list[str], parsed_globals: Namespace) -> int:
        self._command.renderer = TextHelpRenderer(page=not parsed_globals.no_cli_pager)
        self._command(args, parsed_globals)
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._command, name)


def renamed(command: HelpCommand) -> Any:
    """``command``, rendered as facesearch's plain-text, optionally paged help."""
    return _RenamedHelp(command)
