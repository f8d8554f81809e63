"""One walk over botocore shapes, shared by validation, the wire codec, blob detection and help.

:class:`ShapeVisitor` walks a value along its shape the way LocalStack's protocol parser and
serializer do: :meth:`~ShapeVisitor.visit` dispatches on the shape's type name to a
``visit_<type>`` method. The containers (structure, list, map) are walked here, once, with the
paths that name a member in messages (``Face.BoundingBox``, ``FaceIds[3]``, ``Tags.team``);
a subclass checks or converts the types it cares about and calls the container walk to go on.
:func:`reaches` answers "does this shape hold a blob / a timestamp / a FaceDetail anywhere".
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape

# Every type name of botocore's shapes.
TYPE_NAMES = (
    "structure",
    "list",
    "map",
    "string",
    "integer",
    "long",
    "float",
    "double",
    "boolean",
    "blob",
    "timestamp",
)


def join(path: str, key: str) -> str:
    """The path of member ``key`` of the structure at ``path`` (the request itself is ``""``)."""
    return f"{path}.{key}" if path else key


class ShapeVisitor:
    """A walk over a value and its shape; each ``visit_<type>`` handles one type name.

    The container handlers rebuild the value from their children's results: a structure drops
    members that are None (JSON null means absent) and keeps members its shape does not know as
    they are, a list keeps its order, a map its keys. A type without a handler goes to
    :meth:`visit_scalar`, which returns the value unchanged.
    """

    def __init__(self) -> None:
        # Resolved once: visit() runs for every value of every request.
        self._handlers: dict[str, Callable[[Any, Any, str], Any]] = {
            name: getattr(self, f"visit_{name}", self.visit_scalar) for name in TYPE_NAMES
        }

    def visit(self, shape: Shape, value: Any, path: str = "") -> Any:
        """``value`` (of ``shape``, at ``path``) as this visitor handles it."""
        handler = self._handlers.get(shape.type_name)
        if handler is None:
            return self.visit_scalar(shape, value, path)
        return handler(shape, value, path)

    def visit_structure(self, shape: StructureShape, value: Any, path: str) -> Any:
        members = shape.members
        return {
            key: item if key not in members else self.visit(members[key], item, join(path, key))
            for key, item in value.items()
            if item is not None
        }

    def visit_list(self, shape: ListShape, value: Any, path: str) -> Any:
        return [self.visit(shape.member, item, f"{path}[{i}]") for i, item in enumerate(value)]

    def visit_map(self, shape: MapShape, value: Any, path: str) -> Any:
        # The key first: a visitor that checks keys reports an entry's key before its value.
        return {
            self.visit_key(shape.key, key, path): self.visit(shape.value, item, f"{path}.{key}")
            for key, item in value.items()
        }

    def visit_key(self, shape: Shape, key: Any, path: str) -> Any:
        """A map's key (``path`` is the map's): unchanged unless a visitor checks keys."""
        return key

    def visit_scalar(self, shape: Shape, value: Any, path: str) -> Any:
        return value


def reaches(shape: Shape | None, test: Callable[[Shape], bool]) -> bool:
    """Whether ``shape`` or a shape it holds at any depth (structure members, list members, map
    values) passes ``test``. Cached per shape and test: pass a module-level function."""
    return shape is not None and _reaches(shape, test)


@cache
def _reaches(shape: Shape, test: Callable[[Shape], bool]) -> bool:
    return any(test(inner) for inner in within(shape))


@cache
def within(shape: Shape) -> tuple[Shape, ...]:
    """``shape`` and every shape it holds at any depth, each name once (recursive shapes end)."""
    found: dict[str, Shape] = {}
    pending = [shape]
    while pending:
        current = pending.pop()
        if current.name in found:
            continue
        found[current.name] = current
        if isinstance(current, StructureShape):
            pending.extend(current.members.values())
        elif isinstance(current, ListShape):
            pending.append(current.member)
        elif isinstance(current, MapShape):
            # Map keys are strings on every wire: only the values can hold anything.
            pending.append(current.value)
    return tuple(found.values())
