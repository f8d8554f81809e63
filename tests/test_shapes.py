"""The one walk over botocore shapes: dispatch, member paths, and reaches() on any shape."""

from __future__ import annotations

from typing import Any

from botocore.model import Shape, ShapeResolver

from facesearch.contract import operation_model
from facesearch.shapes import ShapeVisitor, reaches, within

# A recursive model (Rekognition's has none): a Node holds Nodes and a map of Leaf values.
_RESOLVER = ShapeResolver(
    {
        "Node": {
            "type": "structure",
            "members": {
                "Children": {"shape": "Nodes"},
                "Leaves": {"shape": "Leaves"},
                "Name": {"shape": "Text"},
            },
        },
        "Nodes": {"type": "list", "member": {"shape": "Node"}},
        "Leaves": {"type": "map", "key": {"shape": "Text"}, "value": {"shape": "Leaf"}},
        "Leaf": {"type": "structure", "members": {"Data": {"shape": "Data"}}},
        "Data": {"type": "blob"},
        "Text": {"type": "string"},
    }
)
NODE = _RESOLVER.get_shape_by_name("Node")


def _is_blob(shape: Shape) -> bool:
    return shape.type_name == "blob"


def _is_timestamp(shape: Shape) -> bool:
    return shape.type_name == "timestamp"


class _Paths(ShapeVisitor):
    """Records the path of every scalar it meets, and of every map key."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def visit_key(self, shape: Shape, key: Any, path: str) -> Any:
        self.seen.append(f"{path} key")
        return key

    def visit_scalar(self, shape: Shape, value: Any, path: str) -> Any:
        self.seen.append(f"{shape.type_name} {path}")
        return value


def test_within_ends_on_a_recursive_shape_and_reaches_a_map_value():
    assert {shape.name for shape in within(NODE)} == {
        "Node",
        "Nodes",
        "Leaves",
        "Leaf",
        "Data",
        "Text",
    }
    assert reaches(NODE, _is_blob)
    assert not reaches(NODE, _is_timestamp)
    assert not reaches(None, _is_blob)


def test_reaches_reads_the_service_model():
    assert reaches(operation_model("DetectFaces").input_shape, _is_blob)
    assert not reaches(operation_model("ListFaces").input_shape, _is_blob)
    assert reaches(operation_model("DescribeCollection").output_shape, _is_timestamp)


def test_the_walk_names_members_items_and_entries_and_drops_nulls():
    value = {
        "Name": "root",
        "Children": [{"Name": "a"}, {"Name": None, "Leaves": {"x": {"Data": b"1"}}}],
        "Unknown": 7,
    }
    visitor = _Paths()
    walked = visitor.visit(NODE, value)
    assert visitor.seen == [
        "string Name",
        "string Children[0].Name",
        "Children[1].Leaves key",
        "blob Children[1].Leaves.x.Data",
    ]
    # Members the shape does not know pass through as they are; null members are absent.
    assert walked == {
        "Name": "root",
        "Children": [{"Name": "a"}, {"Leaves": {"x": {"Data": b"1"}}}],
        "Unknown": 7,
    }
