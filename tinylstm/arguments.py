"""The API's arguments checked against the types its functions declare, so a wrong type is one TinyLSTMError.

``import tinylstm`` is a front door for scripts, where nothing checks types before the call: without this, a
string where a number belongs (``hidden="4"``), a float where a count belongs (``epochs=1.5``), ``True`` for a
count or ``None`` for a path fail deep inside PyTorch, numpy or pathlib with their own error types, or worse,
are taken (``epochs=True`` trained one epoch). :func:`checked` reads a function's annotations (and
:func:`check_fields` a dataclass's) and refuses any argument outside them, naming the function, the argument
and the type it takes. Values are still checked by the functions themselves (ranges, names, files).

What an annotation admits: ``int`` an integer (numpy's too), never a bool; ``float`` any real number but a
bool; ``bool`` a bool; ``str`` a string; ``Path`` any ``os.PathLike`` (and where a path is taken, never an
empty string: ``Path("")`` is the working directory); ``Sequence[X]`` a list, tuple, range,
set or 1-D numpy array of X; ``dict[...]`` a mapping; a ``Literal`` its values; ``Callable`` anything
callable; ``Any`` anything. The function then gets numpy scalars as Python numbers and the collections as
lists.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import numbers
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from tinylstm.errors import TinyLSTMError

F = TypeVar("F", bound=Callable[..., Any])


def _admits(hint: Any, value: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_admits(arm, value) for arm in args)
    if origin is typing.Literal:
        return any(value == v and type(value) is type(v) for v in args)
    if hint is bool:
        return isinstance(value, (bool, np.bool_))
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if hint is os.PathLike or (isinstance(hint, type) and issubclass(hint, os.PathLike)):
        return isinstance(value, os.PathLike)
    if origin in (Sequence, list, tuple):
        return _is_collection(value) and all(_admits(args[0] if args else Any, v) for v in value)
    if origin in (dict, Mapping):
        return isinstance(value, Mapping)
    if origin is Callable or hint is Callable:
        return callable(value)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a form this checker does not read: the function checks the value itself


def _is_collection(value: Any) -> bool:
    """A list, tuple, range, set or 1-D numpy array: what a list argument may be given as."""
    if isinstance(value, np.ndarray):
        return value.ndim == 1
    return isinstance(value, (list, tuple, range, set, frozenset))


def _plain(value: Any) -> Any:
    """numpy scalars as the Python numbers they hold, numpy arrays and the other collections as lists, so the
    functions behind the API (and PyTorch, which wants an ``int`` hidden size) see the types they declare."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, range, set, frozenset)):
        return [_plain(v) for v in (sorted(value) if isinstance(value, (set, frozenset)) else value)]
    return value


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is None or hint is type(None):
        return "None"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_describe(arm) for arm in args))
    if origin is typing.Literal:
        return " or ".join(repr(v) for v in args)
    if origin in (Sequence, list, tuple):
        return f"a list of {_describe(args[0]) if args else 'values'}"
    if origin in (dict, Mapping):
        return "a dict"
    if origin is Callable or hint is Callable:
        return "a function"
    if isinstance(hint, type) and issubclass(hint, os.PathLike):
        return "a path"
    return _a(getattr(hint, "__name__", str(hint)))


def _a(name: str) -> str:
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def _refuse(where: str, name: str, value: Any, hint: Any) -> TinyLSTMError:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    what = "None" if value is None else _a(type(value).__name__)
    return TinyLSTMError(f"{where}: {name}={shown} is {what}; pass {_describe(hint)}")


def checked(func: F) -> F:
    """``func`` refusing, before it runs, any argument its annotations do not admit."""
    signature = inspect.signature(func)
    where = f"tinylstm.{func.__name__}"
    hints: dict[str, Any] = {}

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not hints:  # on the first call: the annotations name types imported after the decorator ran
            hints.update(typing.get_type_hints(func))
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TinyLSTMError(f"{where}: {exc}") from None
        for name, value in bound.arguments.items():
            kind = signature.parameters[name].kind
            if kind == inspect.Parameter.VAR_KEYWORD:
                bound.arguments[name] = {k: _plain(v) for k, v in value.items()}  # checked where it lands
                continue
            if kind == inspect.Parameter.VAR_POSITIONAL:
                continue
            hint = hints.get(name, Any)
            if not _admits(hint, value):
                raise _refuse(where, name, value, hint)
            # Path("") is ".": the working directory, which nobody asked for
            if isinstance(value, str) and not value and _admits(hint, Path()):
                raise TinyLSTMError(
                    f"{where}: {name}='' is an empty path; give a file or directory, or leave it out"
                )
            bound.arguments[name] = _plain(value)
        return func(*bound.args, **bound.kwargs)

    return typing.cast(F, wrapper)


def check_fields(where: str, cls: type, values: Mapping[str, Any]) -> None:
    """Refuse any of ``values`` (keyword arguments of the dataclass ``cls``) that its field's type does not
    admit."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in values and not _admits(hints[f.name], values[f.name]):
            raise _refuse(where, f.name, values[f.name], hints[f.name])
