"""Lazy package exports: ``from dis_eval.data import load_data`` works, yet importing the
package costs nothing until a name is used (so ``dis-eval --help`` never imports torch).

A package's ``__init__`` maps each public name to the submodule that defines it::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"load_data": ".spec", ...})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """(``__getattr__``, ``__dir__``, ``__all__``) for a package exporting ``exports``
    (public name -> relative module that defines it)."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name], package), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__, sorted(exports)
