"""What produced a number: library versions and the time, recorded beside every score."""

from __future__ import annotations

import datetime as _dt
import platform
from typing import Any


def library_versions() -> dict[str, str]:
    """Versions of Python and the numerical libraries a score depends on."""
    import numpy
    import scipy
    import sklearn
    import torch

    return {"python": platform.python_version(), "numpy": numpy.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "torch": torch.__version__}


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def stamp() -> dict[str, Any]:
    """``{"versions": ..., "evaluated_at": ...}`` for a metrics record."""
    return {"versions": library_versions(), "evaluated_at": utc_now()}
