"""``key=value`` overrides, the one parser behind ``dis-eval train CONFIG key=value``,
``dis-eval evaluate --set metric.key=value``, ``dis-eval sweep --set key=value`` and a sweep
file's ``set:``.

Values are read as YAML (``4`` is an int, ``1e-4`` a float, ``null`` None, ``[0.5, 0.9]`` a
list, anything else a string); an empty value is None. A malformed item is a one-line
:class:`UserError` of one shape: ``<flag> <item>: <what is wrong>; <how to fix it>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dis_eval.errors import UserError


def parse_override(item: str, flag: str = "override", example: str = "beta=4") -> tuple[str, Any]:
    """One ``key=value`` string -> (key, value)."""
    import yaml

    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"{flag} {item!r}: expected key=value; write it like {example}")
    if not value.strip():
        return key, None
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError as exc:
        why = str(getattr(exc, "problem", None) or exc).splitlines()[0]
        raise UserError(f"{flag} {item!r}: the value is not valid YAML ({why}); quote it or fix it, "
                        f"e.g. {example}") from None


def parse_overrides(items: Iterable[str], flag: str = "override", example: str = "beta=4") -> dict[str, Any]:
    """``["beta=4", "device=cpu"]`` -> ``{"beta": 4, "device": "cpu"}`` (later items win)."""
    return dict(parse_override(item, flag, example) for item in items)
