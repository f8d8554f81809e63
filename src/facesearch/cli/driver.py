"""The AWS CLI v1 driver, narrowed to Rekognition's face operations and renamed ``facesearch``.

``facesearch <operation> ...`` runs awscli's own machinery as ``aws rekognition <operation> ...``:
arguments from the service model, shorthand, ``file://``/``fileb://``, ``--cli-input-json``,
``--generate-cli-skeleton``, pagination, ``--query``, formatting and help. The subclasses here
only change what differs: the program name and usage, the 21 operations, the extra global
options, where requests go (:mod:`facesearch.cli.embedded`) and AWS CLI v2's exit codes (252
usage, 253 configuration, 254 service error, 255 anything else).
"""

from __future__ import annotations

import logging
import signal
import sys
from argparse import Namespace
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NoReturn

import botocore.session
from awscli import EnvironmentVariables
from awscli import __version__ as awscli_version
from awscli.argparser import ArgTableArgParser, MainArgParser, ServiceArgParser
from awscli.argprocess import ParamError
from awscli.arguments import CustomArgument, UnknownArgumentError
from awscli.clidriver import CLIDriver, ServiceCommand, ServiceOperation
from awscli.compat import get_stderr_text_writer
from awscli.paramfile import ResourceLoadingError
from awscli.plugin import load_plugins
from awscli.utils import write_exception
from botocore import __version__ as botocore_version
from botocore import xform_name
from botocore.exceptions import (
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PaginationError,
    ParamValidationError,
    ProfileNotFound,
)
from botocore.loaders import Loader

from facesearch import __version__
from facesearch.cli import arguments, folder, help, wait
from facesearch.cli.caller import FacesearchCaller
from facesearch.cli.embedded import Transport, warn_ineffective
from facesearch.cli.output import OUTPUT_FORMATS
from facesearch.contract import OPERATIONS
from facesearch.model import SERVICE_NAME
from facesearch.vision.errors import ModelsMissingError

LOG = logging.getLogger("facesearch.cli")

PROG = "facesearch"
USAGE = (
    f"{PROG} [options] <operation> [parameters]\n"
    "To see help text, you can run:\n\n"
    f"  {PROG} help\n"
    f"  {PROG} <operation> help\n"
)

EXIT_USAGE = 252
EXIT_CONFIG = 253
EXIT_SERVICE = 254
EXIT_OTHER = 255

# Errors in what the user typed: AWS CLI v2 exits 252 on these.
_USAGE_ERRORS = (
    UnknownArgumentError,
    ParamError,
    ResourceLoadingError,
    ParamValidationError,
    PaginationError,
    arguments.UsageError,
)
# A server refusing the request's signature or key: worth saying where the key came from.
_AUTH_ERRORS = frozenset(
    {"UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException"}
)
# Errors in the environment: AWS CLI v2 exits 253.
_CONFIG_ERRORS = (NoRegionError, NoCredentialsError, ProfileNotFound)

# Global options this CLI adds to AWS CLI v1's (whose own are in awscli/data/cli.json).
_EXTRA_GLOBALS: dict[str, dict[str, Any]] = {
    "data-dir": {
        "help_text": "<p>Folder of the embedded store (default: <code>$FACESEARCH_DATA_DIR</code>, "
        "else <code>~/.local/share/facesearch</code>). Ignored with --endpoint-url.</p>",
    },
    "store": {
        "help_text": "<p>A PostgreSQL store, <code>postgresql://USER:PASS@HOST:PORT/DB</code>, "
        "used in place of the embedded store (default: <code>$FACESEARCH_STORE</code>). "
        "Ignored with --endpoint-url.</p>",
    },
    "store-replica": {
        "action": "append",
        "help_text": "<p>A streaming replica of the PostgreSQL store that reads may use, "
        "<code>postgresql://...</code>; repeat for more (default: "
        "<code>$FACESEARCH_STORE_REPLICAS</code>, separated by spaces). "
        "Ignored with --endpoint-url.</p>",
    },
    "index-dir": {
        "help_text": "<p>Where the search indexes are kept on local disk, shared with the other "
        "processes of the machine (default: <code>$FACESEARCH_INDEX_DIR</code>, else "
        "<code>indexes</code> in the data directory, or a folder per PostgreSQL store in "
        "<code>~/.cache/facesearch/indexes</code>). Ignored with --endpoint-url.</p>",
    },
    "cli-binary-format": {
        "choices": ["base64", "raw-in-base64-out"],
        "help_text": "<p>How blob values typed as text are read: <code>raw-in-base64-out</code> "
        "(the default, as in AWS CLI v1) takes the text's own bytes, <code>base64</code> "
        "decodes it. <code>fileb://</code> always gives the file's raw bytes.</p>",
    },
    "no-cli-pager": {
        "action": "store_true",
        "help_text": "<p>Print help straight to stdout instead of through a pager "
        "(results are never paged).</p>",
    },
    "cli-auto-prompt": {
        "action": "store_true",
        "help_text": "<p>Prompt for each required parameter not given on the command line.</p>",
    },
    "no-cli-auto-prompt": {
        "action": "store_true",
        "help_text": "<p>Never prompt, even if <code>AWS_CLI_AUTO_PROMPT</code> asks to.</p>",
    },
}


class _ParserMixin:
    """Usage errors name ``facesearch`` and exit 252 (argparse's default is 2)."""

    def error(self, message: str) -> NoReturn:
        raise arguments.UsageError(message)


class _MainParser(_ParserMixin, MainArgParser):
    pass


class _ServiceParser(_ParserMixin, ServiceArgParser):
    pass


class _OperationParser(_ParserMixin, ArgTableArgParser):
    pass


def _renamed(parser: Any) -> Any:
    parser.prog = PROG
    parser.usage = USAGE
    return parser


class FacesearchOperation(ServiceOperation):
    """One operation: awscli's, with facesearch's parser, help page and prompting."""

    def __init__(self, global_arguments: Callable[[], dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._global_arguments = global_arguments

    def __call__(self, args: list[str], parsed_globals: Namespace) -> int:
        if arguments.auto_prompt_enabled(parsed_globals):
            args = arguments.prompt_missing(self._operation_model, self.arg_table, args)
        return super().__call__(args, parsed_globals)

    def _build_call_parameters(
        self, args: Namespace, arg_table: dict[str, Any], parsed_globals: Namespace
    ) -> dict[str, Any]:
        # awscli's loop, but a bad scalar ("--max-users 1.5") is a usage error naming the
        # option, where awscli lets Python's own ValueError text escape with status 255.
        params: dict[str, Any] = {}
        given = vars(args)
        for argument in arg_table.values():
            if argument.py_name not in given:
                continue
            raw = given[argument.py_name]
            value = self._unpack_arg(argument, raw, parsed_globals)
            try:
                argument.add_to_params(params, value)
            except ValueError:
                kind = getattr(argument, "cli_type_name", "") or "value"
                raise arguments.UsageError(
                    f"argument --{argument.name}: expected {'an' if kind[0] in 'aeiou' else 'a'}"
                    f" {kind}, got {raw!r}"
                ) from None
            except TypeError:
                if not (isinstance(raw, str) and raw.startswith("fileb://")):
                    raise
                # "--image fileb://photo.jpg": a structure given a file's bytes (aws fails alike).
                raise arguments.UsageError(
                    f"argument --{argument.name} takes a structure, not a file's bytes: use "
                    f"--{argument.name}-bytes {raw}, or --{argument.name} Bytes=<base64> or "
                    "S3Object={Bucket=...,Name=...}"
                ) from None
        return params

    def _create_operation_parser(self, arg_table: dict[str, Any]) -> ArgTableArgParser:
        return _renamed(_OperationParser(arg_table))

    def create_help_command(self) -> Any:
        """The operation's help page, from the model's documentation."""
        return help.renamed(
            help.OperationHelp(
                self._global_arguments(),
                session=self._session,
                operation_model=self._operation_model,
                arg_table=self.arg_table,
                name=self._name,
                event_class=".".join(self.lineage_names),
            )
        )


class RekognitionCommand(ServiceCommand):
    """The Rekognition service, holding only the operations facesearch implements."""

    def __init__(
        self,
        session: botocore.session.Session,
        transport: Transport,
        global_arguments: Callable[[], dict[str, Any]],
    ) -> None:
        super().__init__(cli_name=SERVICE_NAME, session=session)
        self._transport = transport
        self._global_arguments = global_arguments

    def _create_command_table(self) -> OrderedDict[str, Any]:
        model = self._get_service_model()
        command_table: OrderedDict[str, Any] = OrderedDict()
        for operation in sorted(OPERATIONS):
            cli_name = xform_name(operation, "-")
            command_table[cli_name] = FacesearchOperation(
                self._global_arguments,
                name=cli_name,
                parent_name=self._name,
                session=self.session,
                operation_model=model.operation_model(operation),
                operation_caller=FacesearchCaller(self.session, self._transport),
            )
        self._add_lineage(command_table)
        return command_table

    def _create_parser(self) -> ServiceArgParser:
        command_table = self._get_command_table()
        command_table["help"] = self.create_help_command()
        return _renamed(_ServiceParser(operations_table=command_table, service_name=self._name))

    def create_help_command(self) -> Any:
        """The ``facesearch help`` page: the service and its operations."""
        return help.renamed(
            help.ServiceHelp(
                self._global_arguments(),
                session=self.session,
                obj=self._get_service_model(),
                command_table=self._get_command_table(),
                arg_table=None,
                event_class=".".join(self.lineage_names),
                name=PROG,
            )
        )


class FacesearchDriver(CLIDriver):
    """awscli's driver with one service, facesearch's globals and AWS CLI v2's exit codes."""

    def __init__(self, loader: Loader | None = None) -> None:
        session = botocore.session.Session(EnvironmentVariables)
        if loader is not None:  # already holding the service model (the warm process's)
            session.register_component("data_loader", loader)
        session.user_agent_name = PROG
        session.user_agent_version = __version__
        session.user_agent_extra = f"awscli/{awscli_version} botocore/{botocore_version}"
        # awscli's built-in customizations (rekognition's --image-bytes, --cli-input-json,
        # pagination, global argument handling...); user plugins from ~/.aws/config are not loaded.
        load_plugins({}, event_hooks=session.get_component("event_emitter"))
        self._transport = Transport(session)
        arguments.register(session, self._transport)
        folder.register(session, self._transport)
        wait.register(session, self._transport)
        super().__init__(session=session)

    def _build_command_table(self) -> OrderedDict[str, Any]:
        command = RekognitionCommand(self.session, self._transport, self._get_argument_table)
        return OrderedDict([(SERVICE_NAME, command)])

    def _build_argument_table(self) -> OrderedDict[str, Any]:
        table = super()._build_argument_table()
        # AWS CLI v1's v1-to-v2 migration warnings mean nothing for facesearch.
        del table["v2-debug"]
        # Rebuilt rather than edited: awscli arguments expose their choices read-only.
        table["output"] = CustomArgument(
            "output", help_text=table["output"].documentation, choices=list(OUTPUT_FORMATS)
        )
        for name, params in _EXTRA_GLOBALS.items():
            CustomArgument(name, **params).add_to_arg_table(table)
        return table

    def _create_parser(self, command_table: OrderedDict[str, Any]) -> MainArgParser:
        command_table["help"] = self.create_help_command()
        return _renamed(
            _MainParser(
                command_table,
                self.session.user_agent(),
                None,
                self._get_argument_table(),
                prog=PROG,
            )
        )

    def main(self, args: list[str] | None = None) -> int:
        """Run ``facesearch <operation> ...``; returns the exit status."""
        args = sys.argv[1:] if args is None else args
        if "--help" in args or "-h" in args:
            # AWS CLI v1 knows only the "help" word; "--help" is the same request.
            args = [arg for arg in args if arg not in ("--help", "-h")] + ["help"]
        try:
            command_table = self._get_command_table()
            parser = self._create_parser(command_table)
            # Every command is a Rekognition operation: "facesearch X" is "aws rekognition X".
            parsed_args, remaining = parser.parse_known_args([SERVICE_NAME, *args])
            warn_ineffective(parsed_args)
            if parsed_args.endpoint_url is None:
                # The embedded store reads no AWS configuration: a --profile there must not fail
                # for want of a config file (the warning above already said it has no effect).
                parsed_args.profile = None
            _check_timeouts(parsed_args)
            try:
                self._handle_top_level_args(parsed_args, remaining)
            except ValueError as error:  # e.g. "Bad value for --query ...": what the user typed
                raise arguments.UsageError(str(error)) from None
            self._emit_session_event(parsed_args)
            return command_table[parsed_args.command](remaining, parsed_args)
        except _USAGE_ERRORS as error:
            usage = isinstance(error, arguments.UsageError | UnknownArgumentError)
            return _fail(error, EXIT_USAGE, usage=usage)
        except _CONFIG_ERRORS as error:
            return _fail(error, EXIT_CONFIG)
        except ModelsMissingError as error:
            get_stderr_text_writer().write(f"{PROG}: {error}\n")
            return EXIT_CONFIG
        except ClientError as error:
            status = _fail(error, EXIT_SERVICE)
            if error.response["Error"].get("Code") in _AUTH_ERRORS and self._transport.signed_with:
                get_stderr_text_writer().write(
                    f"{PROG}: the request was signed with {self._transport.signed_with}. Give "
                    "the server's keys as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, in "
                    "~/.aws/credentials, or with --profile.\n"
                )
            return status
        except KeyboardInterrupt:
            sys.stdout.write("\n")
            return 128 + signal.SIGINT
        except Exception as error:
            LOG.debug("Exception caught in main()", exc_info=True)
            return _fail(error, EXIT_OTHER)
        finally:
            self._transport.close()


def _check_timeouts(parsed_args: Namespace) -> None:
    """--cli-read-timeout and --cli-connect-timeout are whole seconds (awscli would fail on
    int() with Python's own words)."""
    for dest, flag in (
        ("read_timeout", "--cli-read-timeout"),
        ("connect_timeout", "--cli-connect-timeout"),
    ):
        value = getattr(parsed_args, dest, None)
        if value is not None and not str(value).strip().isdigit():
            raise arguments.UsageError(
                f"argument {flag}: expected a whole number of seconds, got {value!r}"
            )


def _fail(error: Exception, status: int, *, usage: bool = False) -> int:
    LOG.debug("Exiting with status %d", status, exc_info=True)
    stderr = get_stderr_text_writer()
    if usage:
        stderr.write(f"usage: {USAGE}\n{PROG}: error: {error}\n")
    else:
        write_exception(error, outfile=stderr)
    return status


def run(argv: list[str], loader: Loader | None = None) -> int:
    """Run one ``facesearch <operation>`` command line; ``loader``: a botocore data loader to
    reuse rather than read the service model and endpoints again."""
    return FacesearchDriver(loader).main(argv)
