"""A quick structural check that accepts only resources the fhir.resources R4B models accept.

Why: validating a resource through the pydantic models costs about 100 µs, most of it in Python
hooks that run once per nested element; a population run validates tens of millions of resources.
This check walks the JSON once against tables read from the same models — element names, single or
repeated, required elements, choice groups, the resource type of contained resources — and checks
each primitive value with the models' own pydantic type for it, remembering the values it has seen
(codes, systems, dates and units recur across a population). It answers True only when it is sure
the models accept the resource; anything it does not fully understand (a null, an empty object or
list, a `_element` extension without its value, an element named by its Python name…) answers
False, and then the models are asked, so their error message is the one reported. The differential
tests hold it to that: it never accepts what the models reject.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any

_NONE = type(None)
_MEMO_LIMIT = 200_000  # primitive values remembered (per process), then the memory starts again


@dataclass
class _Field:
    repeated: bool
    model: Any = None  # a model class (complex element), or
    resource: bool = False  # any resource, by its resourceType (contained), or
    primitive: Any = None  # a pydantic TypeAdapter of the primitive type


@dataclass
class _Shape:
    resource_type: str | None  # set on resources: their resourceType must be this
    fields: dict[str, _Field] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    choices: tuple[tuple[tuple[str, ...], bool], ...] = ()  # (element names, one required)


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not _NONE]
        if len(args) == 1:
            return args[0]
    return annotation


_ADAPTERS: dict[Any, Any] = {}


def _adapter(annotation: Any) -> Any:
    """The pydantic TypeAdapter of a primitive type, one per distinct type (they are costly to build)."""
    try:
        return _ADAPTERS[annotation]
    except (KeyError, TypeError):
        from pydantic import TypeAdapter

        adapter = TypeAdapter(annotation)
        try:
            _ADAPTERS[annotation] = adapter
        except TypeError:  # an unhashable type annotation: not shared
            pass
        return adapter


@cache
def _shape(model: Any) -> _Shape:
    """The table of a model class, read from its pydantic fields and their FHIR metadata."""
    base = model.__mro__
    is_resource = any(c.__name__ == "Resource" and c.__module__.endswith(".resource") for c in base)
    shape = _Shape(model.__resource_type__ if is_resource else None)
    required: list[str] = []
    groups: dict[str, tuple[list[str], bool]] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if name == "fhir_comments":
            continue
        annotation = _strip_optional(info.annotation)
        repeated = typing.get_origin(annotation) in (list, typing.List)  # noqa: UP006 - typing.List is what the models use
        if repeated:
            annotation = _strip_optional(typing.get_args(annotation)[0])
        klass = getattr(annotation, "get_model_klass", None)
        if klass is not None:
            target = klass()
            f = _Field(repeated, resource=True) if target.__resource_type__ == "Resource" else _Field(repeated, target)
        else:
            f = _Field(repeated, primitive=_adapter(annotation))
        shape.fields[alias] = f
        if info.is_required() or extra.get("element_required"):
            required.append(alias)
        if extra.get("one_of_many"):
            names, req = groups.setdefault(str(extra["one_of_many"]), ([], bool(extra.get("one_of_many_required"))))
            names.append(alias)
    shape.required = tuple(required)
    shape.choices = tuple((tuple(names), req) for names, req in groups.values())
    return shape


@cache
def _resource_model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError, AttributeError):
        return None


class QuickCheck:
    """`accepts(resource)`: True only when the fhir.resources R4B models surely accept it."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, type, Any], bool] = {}

    def accepts(self, resource: Any) -> bool:
        if not isinstance(resource, dict):
            return False
        rtype = resource.get("resourceType")
        model = _resource_model(rtype) if isinstance(rtype, str) else None
        return model is not None and self._object(resource, _shape(model))

    def _object(self, value: Any, shape: _Shape) -> bool:
        if type(value) is not dict or not value:
            return False
        fields = shape.fields
        for key, item in value.items():
            if key == "resourceType":
                if shape.resource_type is None or item != shape.resource_type:
                    return False
                continue
            f = fields.get(key)
            if f is None:
                return False
            if f.repeated:
                if type(item) is not list or not item:
                    return False
                for one in item:
                    if not self._element(one, f):
                        return False
            elif type(item) is list or not self._element(item, f):
                return False
        if shape.resource_type is not None and "resourceType" not in value:
            return False
        for key in shape.required:
            if key not in value:
                return False
        for names, required in shape.choices:
            present = sum(1 for n in names if n in value)
            if present > 1 or (required and present == 0):
                return False
        return True

    def _element(self, value: Any, f: _Field) -> bool:
        if value is None:
            return False
        if f.model is not None:
            return self._object(value, _shape(f.model))
        if f.resource:
            return self.accepts(value) if type(value) is dict else False
        key = (id(f.primitive), type(value), value) if isinstance(value, (str, int, float, bool)) else None
        if key is None:
            return False
        known = self._seen.get(key)
        if known is None:
            try:
                f.primitive.validate_python(value)
                known = True
            except Exception:  # noqa: BLE001 - any refusal of the type means: ask the models
                known = False
            if len(self._seen) >= _MEMO_LIMIT:
                self._seen.clear()
            self._seen[key] = known
        return known
