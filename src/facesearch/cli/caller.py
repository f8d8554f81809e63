"""The operation caller: awscli's, with the client from :class:`Transport` and facesearch's
output formats."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

import botocore.session
from awscli.clidriver import CLIOperationCaller
from awscli.customizations.generatecliskeleton import StubbedCLIOperationCaller

from facesearch.cli.embedded import Transport
from facesearch.cli.output import display


class FacesearchCaller(CLIOperationCaller):
    """Calls an operation on the embedded store or a server, and prints the result."""

    def __init__(self, session: botocore.session.Session, transport: Transport) -> None:
        super().__init__(session)
        self._transport = transport

    def invoke(
        self,
        service_name: str,
        operation_name: str,
        parameters: dict[str, Any],
        parsed_globals: Namespace,
    ) -> int:
        """Call the operation (every page of a list, unless --no-paginate) and print it."""
        client = self._transport.client(parsed_globals)
        response = self._make_client_call(client, operation_name, parameters, parsed_globals)
        self._display_response(operation_name, response, parsed_globals)
        return 0

    def _display_response(
        self, command_name: str, response: Any, parsed_globals: Namespace
    ) -> None:
        display(self._session, parsed_globals, command_name, response)


class StubbedCaller(FacesearchCaller):
    """``--generate-cli-skeleton output``: botocore's Stubber answers with a sample response."""

    _make_client_call = StubbedCLIOperationCaller._make_client_call
