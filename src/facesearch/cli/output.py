"""Output formatters: the AWS CLI's json, text and table, plus AWS CLI v2's yaml and yaml-stream.

AWS CLI v1 (which this CLI embeds) has no YAML output; the two YAML formats follow v2: ``yaml``
prints the whole (all pages merged) result as one document, ``yaml-stream`` prints each page as
an item of a YAML list as soon as it arrives.
"""

from __future__ import annotations

from argparse import Namespace
from collections import OrderedDict
from typing import Any, TextIO

import yaml
from awscli import formatter as aws_formatter
from botocore.session import Session

OUTPUT_FORMATS = ("json", "yaml", "yaml-stream", "text", "table")


class _Dumper(yaml.SafeDumper):
    """A safe dumper that also writes botocore's OrderedDicts (as plain mappings, in order).

    The AWS CLI's timestamp parser keeps timestamps as they came over the wire (numbers or
    strings), so these are all the types a response or a skeleton holds.
    """


_Dumper.add_representer(OrderedDict, lambda dumper, value: dumper.represent_dict(value.items()))


def dump_yaml(data: Any, stream: TextIO) -> None:
    """Write ``data`` as block-style YAML, keys in response order."""
    yaml.dump(
        data,
        stream,
        Dumper=_Dumper,
        default_flow_style=False,
        sort_keys=False,
        allow_unicode=True,
    )


class YAMLFormatter(aws_formatter.FullyBufferedFormatter):
    """``--output yaml``: the full result as one YAML document."""

    def _format_response(self, command_name: str, response: Any, stream: TextIO) -> None:
        # As the JSON formatter does, an operation without a response body prints nothing.
        if response != {}:
            dump_yaml(response, stream)


class YAMLStreamFormatter(aws_formatter.Formatter):
    """``--output yaml-stream``: each page as one item of a YAML list, printed as it arrives."""

    def __call__(self, command_name: str, response: Any, stream: TextIO | None = None) -> None:
        if stream is None:
            stream = self._get_default_stream()
        pages = response if aws_formatter.is_response_paginated(response) else [response]
        try:
            for page in pages:
                self._remove_request_id(page)
                if self._args.query is not None:
                    page = self._args.query.search(page)
                dump_yaml([page], stream)
                self._flush_stream(stream)
        finally:
            self._flush_stream(stream)


def get_formatter(output: str, parsed_globals: Namespace) -> aws_formatter.Formatter:
    """The formatter for an ``--output`` value (the AWS CLI's own for json, text and table)."""
    if output == "yaml":
        return YAMLFormatter(parsed_globals)
    if output == "yaml-stream":
        return YAMLStreamFormatter(parsed_globals)
    return aws_formatter.get_formatter(output, parsed_globals)


def display(session: Session, parsed_globals: Namespace, command_name: str, response: Any) -> None:
    """Print a response in the ``--output`` format (else the profile's, else json)."""
    output = parsed_globals.output or session.get_config_variable("output") or "json"
    get_formatter(output, parsed_globals)(command_name, response)
