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
from awscli.clidocs import GlobalOptionsDocumenter, OperationDocumentEventHandler
from awscli.help import HelpCommand, OperationHelpCommand, PagingHelpRenderer
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


class _OperationDocs(OperationDocumentEventHandler):
    """Documents the global options from facesearch's argument table.

    awscli copies them from files generated for ``aws``, which lack facesearch's own options.
    """

    def doc_synopsis_end(self, help_command: OperationHelp, **kwargs: Any) -> None:
        """End the synopsis with the global options."""
        doc = help_command.doc
        for argument in help_command.global_arguments.values():
            value = "" if argument.cli_type_name == "boolean" else " <value>"
            doc.writeln(f"[{argument.cli_name}{value}]")
        doc.style.end_codeblock()
        self._documented_arg_groups = []

    def doc_global_option(self, help_command: OperationHelp, **kwargs: Any) -> None:
        """The Global Options section."""
        help_command.doc.style.h2("Global Options")
        target = Namespace(doc=help_command.doc, arg_table=help_command.global_arguments)
        GlobalOptionsDocumenter(target).doc_global_options()


class OperationHelp(OperationHelpCommand):
    """An operation's help page, with facesearch's global options."""

    EventHandlerClass = _OperationDocs

    def __init__(self, global_arguments: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.global_arguments = global_arguments


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
