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
from awscli.clidocs import (
    GlobalOptionsDocumenter,
    OperationDocumentEventHandler,
    ServiceDocumentEventHandler,
)
from awscli.help import HelpCommand, OperationHelpCommand, PagingHelpRenderer, ServiceHelpCommand
from awscli.utils import ignore_ctrl_c
from botocore.model import OperationModel, Shape
from docutils.core import publish_string

from facesearch.contract import FACE_DETAIL_NOT_RETURNED
from facesearch.shapes import reaches

# The top of ``facesearch help``, in place of Rekognition's introduction (Custom Labels, video...).
SERVICE_DESCRIPTION = f"""
<p>facesearch runs Amazon Rekognition's face-collection operations on your own machine. The
commands below are the AWS CLI's Rekognition commands of the same names, with its options and
output: on the embedded store in a data directory (<code>--data-dir</code>,
default <code>$FACESEARCH_DATA_DIR</code> or <code>~/.local/share/facesearch</code>), on a
PostgreSQL store (<code>--store postgresql://...</code>), or against a facesearch server
(<code>--endpoint-url http://HOST:9777</code>). <code>facesearch COMMAND help</code> documents
one command.</p>
<p>facesearch's own commands:</p>
<ul>
<li><code>facesearch serve</code>: run the HTTP server that boto3 and the AWS CLI talk to
(<code>facesearch serve --help</code>).</li>
<li><code>facesearch setup-models</code>: install the face models (in
<code>$FACESEARCH_MODELS_DIR</code>, default <code>~/.cache/facesearch/models</code>).</li>
<li><code>facesearch index-faces --image-folder DIR</code>: index every photo of a folder.</li>
<li><code>facesearch warm status</code>, <code>facesearch warm stop</code>: the warm process that
runs later commands in about a fifth of the time (started by a first command, gone after 10 idle
minutes; <code>FACESEARCH_WARM=0</code> turns it off).</li>
</ul>
<p>Where facesearch differs from Rekognition: FaceDetail never has
{", ".join(FACE_DETAIL_NOT_RETURNED)}, and no CONFUSED emotion (no model that installs from PyPI
provides them); Similarity is calibrated so that 80 means a false-match rate of 5 in a million
per comparison, and every 10 points ten times fewer (docs/accuracy.md).</p>
"""


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

    def doc_description(self, help_command: OperationHelp, **kwargs: Any) -> None:
        """Rekognition's description, then where facesearch differs."""
        super().doc_description(help_command, **kwargs)
        notes = operation_notes(help_command.obj)
        if notes:
            help_command.doc.style.h2("In facesearch")
            help_command.doc.include_doc_string("".join(notes))

    def doc_synopsis_end(self, help_command: OperationHelp, **kwargs: Any) -> None:
        """End the synopsis with the global options."""
        doc = help_command.doc
        for argument in help_command.global_arguments.values():
            value = "" if argument.cli_type_name == "boolean" else " <value>"
            doc.writeln(f"[{argument.cli_name}{value}]")
        doc.style.end_codeblock()
        self._documented_arg_groups: list[Any] = []

    def doc_global_option(self, help_command: OperationHelp, **kwargs: Any) -> None:
        """The Global Options section."""
        help_command.doc.style.h2("Global Options")
        target = Namespace(doc=help_command.doc, arg_table=help_command.global_arguments)
        GlobalOptionsDocumenter(target).doc_global_options()


def _is_face_detail(shape: Shape) -> bool:
    return shape.name == "FaceDetail"


def _is_match(shape: Shape) -> bool:
    """A match that carries a Similarity."""
    return shape.name in ("FaceMatch", "UserMatch", "CompareFacesMatch")


def operation_notes(operation: OperationModel) -> list[str]:
    """Where this operation in facesearch differs from Rekognition's, as HTML paragraphs."""
    notes = []
    if reaches(operation.output_shape, _is_face_detail):
        notes.append(
            f"<p>facesearch never returns {', '.join(FACE_DETAIL_NOT_RETURNED)} or the CONFUSED "
            "emotion (no model that installs from PyPI provides them); with ALL attributes a "
            "FaceDetail adds AgeRange, Gender, Emotions, Smile, EyesOpen, MouthOpen and "
            "EyeDirection.</p>"
        )
    if reaches(operation.output_shape, _is_match):
        notes.append(
            "<p>Similarity is calibrated: 80 means a false-match rate of 5 in a million per "
            "comparison, and every 10 points ten times fewer; a search of N faces false-matches "
            "about N times as often (docs/accuracy.md in facesearch).</p>"
        )
    return notes


class _ServiceDocs(ServiceDocumentEventHandler):
    """facesearch's own introduction and global options on the ``facesearch help`` page."""

    def doc_description(self, help_command: ServiceHelp, **kwargs: Any) -> None:
        """What facesearch is, its own commands and its differences from Rekognition."""
        help_command.doc.style.h2("Description")
        help_command.doc.include_doc_string(SERVICE_DESCRIPTION)

    def doc_global_option(self, help_command: ServiceHelp, **kwargs: Any) -> None:
        """The Global Options section."""
        help_command.doc.style.h2("Global Options")
        target = Namespace(doc=help_command.doc, arg_table=help_command.global_arguments)
        GlobalOptionsDocumenter(target).doc_global_options()


class ServiceHelp(ServiceHelpCommand):
    """The ``facesearch help`` page: facesearch, its commands and global options."""

    EventHandlerClass = _ServiceDocs

    def __init__(self, global_arguments: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.global_arguments = global_arguments


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
