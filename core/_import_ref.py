"""Importing a worker's function from its reference, `"package.module:function"`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ._config_tables import describe_value
from ._errors import describe


def import_function(ref: str) -> Callable[..., Any]:
    """Import the callable that `ref` names.

    Args:
        ref: `"package.module:function"`; the part after the colon may be dotted
            (`"package.module:Class.method"`).

    Returns:
        The callable.

    Raises:
        ValueError: `ref` is malformed, the module is not found, importing it raises,
            the attribute does not exist or is not callable. The message says which.
    """
    module_name, attr_path = split_reference(ref)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and _is_same_or_parent(exc.name, module_name):
            raise ValueError(f"cannot import {ref!r}: no module named {exc.name!r}") from exc
        # The module exists but itself imports something that does not.
        raise ValueError(f"cannot import {ref!r}: {describe(exc)}") from exc
    except BaseException as exc:
        # The user's module ran and raised: its own error is what they need to see.
        # BaseException: a module that calls sys.exit() or raises KeyboardInterrupt or
        # GeneratorExit must not end `check` silently, or the runner having done nothing.
        raise ValueError(
            f"cannot import {ref!r}: importing {module_name!r} raised {describe(exc)}"
        ) from exc
    target: Any = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(
                f"cannot import {ref!r}: {module_name!r} has no attribute {attr_path!r}"
            ) from None
        except BaseException as exc:
            # A module `__getattr__` or a property is user code too.
            raise ValueError(
                f"cannot import {ref!r}: getting {attr_path!r} from {module_name!r}"
                f" raised {describe(exc)}"
            ) from exc
    if not callable(target):
        raise ValueError(f"{ref!r} is not callable: it is {describe_value(target)}")
    return target


def split_reference(ref: str) -> tuple[str, str]:
    """`"package.module:function"` as its module and attribute path; ValueError if malformed."""
    module_name, _, attr_path = ref.partition(":")
    if not (_is_dotted_name(module_name) and _is_dotted_name(attr_path)):
        raise ValueError(f"must look like 'package.module:function', got {ref!r}")
    return module_name, attr_path


def not_imported(ref: str) -> Callable[..., Any]:
    """What stands for a function that a config was loaded without importing."""

    def not_imported(*_: Any) -> None:
        raise RuntimeError(f"{ref!r} was not imported: the config was loaded without it")

    return not_imported


def _is_dotted_name(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def _is_same_or_parent(name: str, module_name: str) -> bool:
    return module_name == name or module_name.startswith(name + ".")
