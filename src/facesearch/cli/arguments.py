"""AWS CLI v2 features that AWS CLI v1 lacks, added to awscli's machinery as customizations.

``--cli-input-yaml``, ``--generate-cli-skeleton yaml-input``, ``--cli-binary-format`` and
``--cli-auto-prompt`` (a line-by-line prompt for the missing required parameters, not v2's
full-screen one). Each hooks the same awscli events v1's own customizations use.
"""

from __future__ import annotations

import base64
import binascii
import os
import sys
from argparse import Namespace
from typing import Any, ClassVar

import yaml
from awscli.argprocess import ParamError
from awscli.customizations import cliinputjson, generatecliskeleton
from awscli.paramfile import LOCAL_PREFIX_MAP, get_paramfile
from botocore import xform_name
from botocore.model import OperationModel, Shape, StructureShape
from botocore.session import Session
from botocore.utils import ArgumentGenerator

from facesearch.cli.caller import StubbedCaller
from facesearch.cli.embedded import Transport
from facesearch.cli.output import dump_yaml
from facesearch.contract import OPERATIONS, operation_model
from facesearch.shapes import ShapeVisitor, join

_DEFAULT_BINARY_FORMAT = "raw-in-base64-out"


class UsageError(Exception):
    """A command line that cannot run as typed (exit status 252)."""


def register(session: Session, transport: Transport) -> None:
    """Hook this module's customizations into a session that awscli's built-ins are loaded in."""

    def add_arguments(
        operation_model: OperationModel, argument_table: dict[str, Any], **_: Any
    ) -> None:
        CliInputYAMLArgument(session).add_to_arg_table(argument_table)
        GenerateCliSkeletonArgument(session, operation_model, transport).add_to_arg_table(
            argument_table
        )

    # awscli's skeleton argument is replaced by a subclass that also offers yaml-input.
    session.unregister("building-argument-table", generatecliskeleton.add_generate_skeleton)
    # The same event name as awscli's --cli-input-json, registered after it: handlers of a more
    # specific name would run first, and their calling-command handlers must run after its.
    # botocore-stubs type a handler as taking **kwargs only; botocore passes these by name.
    session.register("building-argument-table", add_arguments)  # type: ignore[arg-type]
    # Registered on the same event name as --cli-input-json/yaml's handlers (a more specific
    # name would run first) and last, so that their values are merged by then.
    session.get_component("event_emitter").register_last("calling-command.*", _apply_binary_format)


class CliInputYAMLArgument(cliinputjson.CliInputJSONArgument):
    """``--cli-input-yaml``: the whole input as YAML; command-line values override it."""

    ARG_DATA: ClassVar[dict[str, Any]] = {
        "name": "cli-input-yaml",
        "help_text": "Reads arguments from the YAML string provided. The YAML string follows "
        "the format provided by ``--generate-cli-skeleton yaml-input``. If other arguments are "
        "provided on the command line, those values will override the YAML-provided values. "
        "This may not be specified along with ``--cli-input-json``.",
    }

    def add_to_call_parameters(
        self,
        call_parameters: dict[str, Any],
        parsed_args: Namespace,
        parsed_globals: Namespace,
        **_: Any,
    ) -> None:
        """Merge the YAML document's members into the call (command-line values win)."""
        text = getattr(parsed_args, "cli_input_yaml", None)
        if text is None:
            return
        if getattr(parsed_args, "cli_input_json", None) is not None:
            raise ParamError(self.cli_name, "cannot be specified along with --cli-input-json")
        text = get_paramfile(text, LOCAL_PREFIX_MAP) or text
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ParamError(self.cli_name, f"Invalid YAML: {error}") from None
        if not isinstance(document, dict):
            raise ParamError(self.cli_name, "Invalid YAML: expected a mapping of parameters")
        self._update_call_parameters(call_parameters, document)


class GenerateCliSkeletonArgument(generatecliskeleton.GenerateCliSkeletonArgument):
    """``--generate-cli-skeleton [input|yaml-input|output]``."""

    ARG_DATA: ClassVar[dict[str, Any]] = {
        **generatecliskeleton.GenerateCliSkeletonArgument.ARG_DATA,
        "help_text": "Prints a JSON skeleton to standard output without sending an API request. "
        "If provided with no value or the value ``input``, prints a sample input JSON that can "
        "be used as an argument for ``--cli-input-json``. Similarly, if provided ``yaml-input`` "
        "it will print a sample input YAML that can be used with ``--cli-input-yaml``. If "
        "provided with the value ``output``, it validates the command inputs and returns a "
        "sample output JSON for that command.",
        "choices": ["input", "yaml-input", "output"],
    }

    def __init__(
        self, session: Session, operation_model: OperationModel, transport: Transport
    ) -> None:
        super().__init__(session, operation_model)
        self._transport = transport

    def generate_json_skeleton(
        self,
        call_parameters: dict[str, Any],
        parsed_args: Namespace,
        parsed_globals: Namespace,
        **kwargs: Any,
    ) -> int | None:
        """Print the requested skeleton; returns 0 once printed (the call is not made)."""
        kind = getattr(parsed_args, "generate_cli_skeleton", None)
        if kind == "yaml-input":
            shape = self._operation_model.input_shape
            skeleton = {} if shape is None else ArgumentGenerator().generate_skeleton(shape)
            dump_yaml(skeleton, sys.stdout)
            return 0
        if kind == "output":
            return StubbedCaller(self._session, self._transport).invoke(
                self._operation_model.service_model.service_name,
                self._operation_model.name,
                call_parameters,
                parsed_globals,
            )
        return super().generate_json_skeleton(
            call_parameters, parsed_args, parsed_globals, **kwargs
        )


def _apply_binary_format(
    call_parameters: dict[str, Any], parsed_globals: Namespace, event_name: str, **_: Any
) -> None:
    """``--cli-binary-format base64``: blob values given as text are base64 text, decode them.

    The default, ``raw-in-base64-out``, is AWS CLI v1's behaviour (botocore sends the text's
    bytes); ``fileb://`` values are bytes already and are never touched.
    """
    if (parsed_globals.cli_binary_format or _DEFAULT_BINARY_FORMAT) != "base64":
        return
    command = event_name.rsplit(".", 1)[-1]
    operation = next(name for name in OPERATIONS if xform_name(name, "-") == command)
    shape = operation_model(operation).input_shape
    for key, value in call_parameters.items():
        if shape is not None and key in shape.members:
            option = f"--{xform_name(key, '-')}"
            call_parameters[key] = _Base64Blobs(option).visit(shape.members[key], value, key)


class _Base64Blobs(ShapeVisitor):
    """Decodes the base64 text of one option's blobs. The value is what the user typed: one
    that does not fit its shape, or a null, is left for botocore's validation to name."""

    def __init__(self, option: str) -> None:
        super().__init__()
        self._option = option

    def visit(self, shape: Shape, value: Any, path: str = "") -> Any:
        expected = {"structure": dict, "map": dict, "list": list}.get(shape.type_name)
        if expected is not None and not isinstance(value, expected):
            return value
        return super().visit(shape, value, path)

    def visit_structure(self, shape: StructureShape, value: Any, path: str) -> Any:
        members = shape.members
        return {
            key: self.visit(members[key], item, join(path, key))
            if key in members and item is not None
            else item
            for key, item in value.items()
        }

    def visit_blob(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            return value  # fileb:// gave bytes already
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            message = "Invalid base64 text (--cli-binary-format is base64)"
            raise ParamError(self._option, message) from None


def auto_prompt_enabled(parsed_globals: Namespace) -> bool:
    """Whether to prompt: ``--cli-auto-prompt``, or ``AWS_CLI_AUTO_PROMPT`` unless turned off."""
    if parsed_globals.no_cli_auto_prompt:
        return False
    return parsed_globals.cli_auto_prompt or os.environ.get("AWS_CLI_AUTO_PROMPT", "") in (
        "on",
        "on-partial",
    )


def prompt_missing(
    operation: OperationModel, argument_table: dict[str, Any], args: list[str]
) -> list[str]:
    """Ask on stderr/stdin for each required parameter the command line lacks.

    An image member is asked for as its ``--…-bytes`` form (a photo's path), the way a person at a
    terminal would give it. Nothing is asked when the whole input comes from elsewhere.
    """
    shape = operation.input_shape
    whole_input = ("--cli-input-json", "--cli-input-yaml", "--generate-cli-skeleton")
    if shape is None or args == ["help"] or any(flag in args for flag in whole_input):
        return args
    given = {arg.split("=", 1)[0] for arg in args if arg.startswith("--")}
    answers: list[str] = []
    for member in shape.required_members:
        name = xform_name(member, "-")
        if name not in argument_table:
            continue
        flag = f"--{name}-bytes" if f"{name}-bytes" in argument_table else f"--{name}"
        if not given & {flag, f"--{name}"}:
            answers += [flag, _ask(flag, argument_table[name])]
    return args + answers


def _ask(flag: str, argument: Any) -> str:
    hint = " (path to a photo)" if flag.endswith("-bytes") else f" ({argument.cli_type_name})"
    sys.stderr.write(f"{flag}{hint}: ")
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise UsageError(f"the following arguments are required: {flag}")
    value = line.rstrip("\n")
    if flag.endswith("-bytes") and "://" not in value:
        value = f"fileb://{value}"
    return value
