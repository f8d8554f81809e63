"""A boto3-shaped Rekognition client that runs in-process, with no server.

Method names, arguments, client-side validation, idempotency tokens, return shapes, exceptions
(``client.exceptions.ResourceNotFoundException``, all ``botocore.exceptions.ClientError``),
paginators and ``meta`` are botocore's own, so code written for ``boto3.client('rekognition')``
runs unchanged. Every Rekognition method exists, as on boto3's client; those facesearch does not
implement raise UnknownOperationException, as the server answers them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from botocore import xform_name
from botocore.client import ClientMeta, Config
from botocore.errorfactory import ClientExceptionsFactory
from botocore.exceptions import ClientError, InvalidRegionError, ParamValidationError
from botocore.handlers import generate_idempotent_uuid
from botocore.hooks import HierarchicalEmitter
from botocore.loaders import create_loader
from botocore.paginate import Paginator
from botocore.validate import ParamValidator

from facesearch import contract
from facesearch.defaults import DEFAULT_ACCOUNT_ID, REGION_NAME
from facesearch.errors import RekognitionError
from facesearch.model import SERVICE_NAME, service_model
from facesearch.service import RekognitionService
from facesearch.service.video import extension_headers

if TYPE_CHECKING:
    # boto3's stubs (mypy-boto3-rekognition): request and response types for type checkers.
    from mypy_boto3_rekognition import RekognitionClient


class InProcessClient:
    """In-process Rekognition client: ``client.search_users_by_image(CollectionId=..., ...)``."""

    def __init__(
        self,
        service: RekognitionService,
        account_id: str = DEFAULT_ACCOUNT_ID,
        region_name: str | None = None,
    ) -> None:
        if region_name is not None and not REGION_NAME.fullmatch(region_name):
            raise InvalidRegionError(region_name=region_name)
        self.service = service
        self.account_id = account_id
        # The region whose collections this client sees, as boto3's region_name chooses them.
        self.region = region_name or service.state.region
        model = service_model()
        self.exceptions = ClientExceptionsFactory().create_client_exceptions(model)
        self._methods = {xform_name(op): op for op in model.operation_names}
        self.meta = ClientMeta(
            events=HierarchicalEmitter(),
            client_config=Config(region_name=self.region),
            # Nothing is sent anywhere; an .invalid host can never be reached by mistake.
            endpoint_url="http://embedded.facesearch.invalid",
            service_model=model,
            method_to_api_mapping=self._methods,
            partition="aws",
        )
        self._paginators = create_loader().load_service_model(
            SERVICE_NAME, "paginators-1", model.api_version
        )["pagination"]

    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        try:
            operation = self.__dict__["_methods"][name]
        except KeyError:
            raise AttributeError(f"'InProcessClient' object has no attribute {name!r}") from None

        def call(**params: Any) -> dict[str, Any]:
            return self._call(operation, params)

        call.__name__ = name
        call.__doc__ = service_model().operation_model(operation).documentation
        return call

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self._methods]

    def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation not in contract.OPERATIONS:
            raise ClientError(_unknown_operation(operation), operation)
        model = contract.operation_model(operation)
        # What boto3 does before sending: fill idempotency tokens, validate (minimums only).
        generate_idempotent_uuid(params, model)
        if model.input_shape is not None:
            report = ParamValidator().validate(params, model.input_shape)
            if report.has_errors():
                raise ParamValidationError(report=report.generate_report())
        request_id = str(uuid.uuid4())
        try:
            response = self.service.call(
                operation, params, account_id=self.account_id, region=self.region
            )
        except RekognitionError as err:
            # What botocore's parser makes of an error (the stubs' TypedDict asks for all headers).
            error_response: Any = {
                "Error": {"Code": err.code, "Message": err.message},
                "ResponseMetadata": {"RequestId": request_id, "HTTPStatusCode": err.http_status},
            }
            # from_code gives the exception class (botocore-stubs say an instance).
            error_class = cast("type[ClientError]", self.exceptions.from_code(err.code))
            raise error_class(error_response, operation) from None
        extra = extension_headers(response)
        response = {
            **response,
            "ResponseMetadata": {
                "RequestId": request_id,
                "HTTPStatusCode": 200,
                # facesearch's extension headers, as a server sends them (boto3 shows them here).
                "HTTPHeaders": extra,
                "RetryAttempts": 0,
            },
        }
        return response

    def can_paginate(self, operation_name: str) -> bool:
        """Whether ``get_paginator`` has a paginator for this method, as on boto3's client."""
        return self._methods.get(operation_name) in self._paginators

    def get_paginator(self, operation_name: str) -> Paginator[dict[str, Any]]:
        """botocore's paginator over this client's method, as boto3 gives."""
        operation = self._methods.get(operation_name)
        if operation not in self._paginators:
            raise ValueError(f"Operation cannot be paginated: {operation_name}")
        return Paginator(
            getattr(self, operation_name),
            self._paginators[operation],
            contract.operation_model(operation),
        )

    def close(self) -> None:
        """Close the store (and stop its background threads)."""
        self.service.close()


def _unknown_operation(operation: str) -> Any:
    """The error response of an operation facesearch does not implement, naming those it does."""
    return {
        "Error": {
            "Code": "UnknownOperationException",
            "Message": contract.unsupported_operation(operation),
        },
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }


def client(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    store: str | None = None,
    store_replicas: Sequence[str] | None = None,
    account_id: str = DEFAULT_ACCOUNT_ID,
    region_name: str | None = None,
    search: str | None = None,
    index_dir: str | os.PathLike[str] | None = None,
) -> RekognitionClient:
    """An in-process Rekognition client over ``store`` or the embedded store in ``data_dir``,
    for the collections of ``region_name`` (default ``$FACESEARCH_REGION``, else us-east-1);
    searches and reads may go to ``store_replicas``, streaming replicas of a PostgreSQL store
    (default ``$FACESEARCH_STORE_REPLICAS``); ``search`` is where searches run
    (RekognitionService's ``search_mode``). Its search indexes are kept in ``index_dir`` (see
    RekognitionService).

    Typed as boto3's Rekognition client, whose methods, requests and responses it shares; the
    operations facesearch does not implement raise UnknownOperationException.
    """
    service = RekognitionService(
        data_dir,
        store=store,
        store_replicas=store_replicas,
        search_mode=search,
        index_dir=index_dir,
    )
    try:
        return cast("RekognitionClient", InProcessClient(service, account_id, region_name))
    except InvalidRegionError:
        service.close()
        raise
