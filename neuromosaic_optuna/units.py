"""Units: reading values such as ``"10M"``, ``"100ms"``, ``"64MB"``, ``"90%"`` and writing them.

One home for the units of every metric (from :data:`neuromosaic_optuna.metrics.METRICS`):

* reading: :func:`parse_count`, :func:`parse_duration`, :func:`parse_bytes`, and
  :func:`parse_metric_value` (a study file's typed value, e.g. ``max_latency = "100ms"``) /
  :func:`parse_metric_text` (a command-line bound, e.g. ``accuracy>=90%``), both in the
  metric's own unit;
* writing: :func:`format_metric`, for tables, notes, hover text and the CLI (``compact``).

Errors are :class:`~neuromosaic_optuna.exceptions.ConfigError` naming the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from neuromosaic_optuna.exceptions import ConfigError
from neuromosaic_optuna.metrics import METRICS

__all__ = [
    "finite_number",
    "format_metric",
    "parse_bytes",
    "parse_count",
    "parse_duration",
    "parse_metric_text",
    "parse_metric_value",
]

_COUNT_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9, "T": 1e12}
_TIME_SUFFIX = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
_BYTE_SUFFIX = {
    "B": 1.0, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
    "KIB": 2.0**10, "MIB": 2.0**20, "GIB": 2.0**30, "TIB": 2.0**40,
}
_NUMBER = r"([0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)"


# --------------------------------------------------------------------------- reading


def finite_number(value: Any, path: str) -> float:
    """A finite int or float as ``float`` (booleans and strings are refused).

    Example:
        >>> finite_number(3, "epochs")
        3.0
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(path, f"expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(path, f"expected a finite number, got {value!r}")
    return float(value)


def _parse_unit(value: Any, path: str, suffixes: Mapping[str, float], example: str,
                upper: bool) -> float:
    if isinstance(value, str):
        m = re.fullmatch(_NUMBER + r"\s*([A-Za-zµ]*)", value.strip())
        suffix = (m.group(2).upper() if upper else m.group(2)) if m else None
        if m is None or suffix is None or suffix not in suffixes:
            raise ConfigError(path, f"cannot read {value!r}; write a number with a unit, e.g. "
                              f"{example} (units: {', '.join(k for k in suffixes if k)})")
        number = float(m.group(1)) * suffixes[suffix]
    else:
        number = finite_number(value, path)
    if number < 0:
        raise ConfigError(path, f"must not be negative, got {value!r}")
    return number


def parse_count(value: Any, path: str = "value") -> float:
    """Parse a count such as ``"10M"``, ``"1.5G"``, ``"500K"`` or a plain number.

    Example:
        >>> parse_count("1.5G")
        1500000000.0
    """
    return _parse_unit(value, path, _COUNT_SUFFIX, '"10M"', upper=True)


def parse_duration(value: Any, path: str = "value") -> float:
    """Parse a duration such as ``"100ms"`` or ``"2s"`` into seconds (plain numbers: seconds).

    Example:
        >>> parse_duration("100ms")
        0.1
    """
    return _parse_unit(value, path, _TIME_SUFFIX, '"100ms"', upper=False)


def parse_bytes(value: Any, path: str = "value") -> float:
    """Parse a size such as ``"64MB"`` or ``"1GiB"`` into bytes (plain numbers: bytes).

    Example:
        >>> parse_bytes("2KiB")
        2048.0
    """
    return _parse_unit(value, path, _BYTE_SUFFIX, '"64MB"', upper=True)


_PARSERS: dict[str, Callable[[Any, str], float]] = {
    "seconds": parse_duration, "bytes": parse_bytes, "count": parse_count,
    "per_second": parse_count, "ratio": parse_count,
}


def _unit(metric: str) -> str | None:
    info = METRICS.get(metric)
    return info.unit if info is not None else None


def parse_metric_value(metric: str, value: Any, path: str = "value") -> float:
    """A study file's value of ``metric`` (e.g. a constraint bound) in the metric's unit.

    Durations, sizes and counts take units (``"100ms"``, ``"64MB"``, ``"5M"``); fractions are
    numbers in ``[0, 1]``; metrics outside the catalogue take plain finite numbers.

    Example:
        >>> parse_metric_value("latency", "100ms"), parse_metric_value("accuracy", 0.75)
        (0.1, 0.75)
    """
    unit = _unit(metric)
    if unit in _PARSERS:
        return _PARSERS[unit](value, path)
    number = finite_number(value, path)
    if unit == "fraction" and not 0.0 <= number <= 1.0:
        raise ConfigError(path, f"{metric!r} is a fraction in [0, 1] (0.75 means 75%), "
                          f"got {value!r}")
    return number


def parse_metric_text(metric: str, text: str, path: str = "value") -> float:
    """A value of ``metric`` written on the command line; fractions may be percent.

    Example:
        >>> parse_metric_text("accuracy", "90%"), parse_metric_text("memory", "64MB")
        (0.9, 64000000.0)
    """
    unit = _unit(metric)
    if unit in _PARSERS:
        return parse_metric_value(metric, text, path)
    percent = unit == "fraction" and text.endswith("%")
    try:
        number = float(text[:-1] if percent else text)
    except ValueError:
        example = "0.9 or 90%" if unit == "fraction" else "a plain number"
        raise ConfigError(path, f"cannot read {text!r} for {metric!r}; write {example}") \
            from None
    if not math.isfinite(number):
        raise ConfigError(path, f"the value of {metric!r} must be finite, got {text!r}")
    return parse_metric_value(metric, number / 100.0 if percent else number, path)


# --------------------------------------------------------------------------- writing


def _with_suffix(value: float, suffixes: tuple[tuple[float, str], ...], fmt: str,
                 small: str) -> str:
    for div, suffix in suffixes:
        if abs(value) >= div:
            return f"{value / div:{fmt}}{suffix}"
    return f"{value:{small}}"


def format_metric(name: str, value: float | None, *, compact: bool = False) -> str:
    """Format a metric value in its unit, for tables, notes and hover text.

    Fractions become percent, seconds milliseconds, bytes kB/MB/GB, counts get K/M/G
    suffixes (``flops`` as MACs). ``compact`` is the command line's terse style: fractions
    as they are stored (4 decimals), no spaces and no unit names.

    Args:
        name: The metric's name (units from :data:`neuromosaic_optuna.metrics.METRICS`).
        value: The stored value; None or NaN gives ``"-"``.
        compact: The command line's style.

    Returns:
        A short string.

    Example:
        >>> format_metric("accuracy", 0.9123), format_metric("latency", 0.0123)
        ('91.23%', '12.30 ms')
        >>> format_metric("flops", 9.87e6), format_metric("memory", 331776.0)
        ('9.87M MACs', '331.8 kB')
        >>> format_metric("accuracy", 0.9123, compact=True), format_metric("memory", 331776.0,
        ...                                                                 compact=True)
        ('0.9123', '332KB')
    """
    if value is None or isinstance(value, bool):
        return "-"
    value = float(value)
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    unit = _unit(name) or ""
    gmk = ((1e9, "G"), (1e6, "M"), (1e3, "K"))
    if compact:
        if unit == "fraction":
            return f"{value:.4f}"
        if unit == "seconds":
            return f"{value * 1e3:.2f}ms"
        if unit in ("count", "bytes"):
            tail = "B" if unit == "bytes" else ""
            return _with_suffix(value, gmk, ".3g", ".0f") + tail
        return f"{value:.4g}"
    if unit == "fraction":
        return f"{100 * value:.2f}%"
    if unit == "seconds":
        return f"{1e3 * value:.2f} ms" if abs(value) < 10 else f"{value:.1f} s"
    if unit == "bytes":
        return _with_suffix(value, ((1e9, " GB"), (1e6, " MB"), (1e3, " kB")), ".1f", ".0f") \
            + ("" if abs(value) >= 1e3 else " B")
    if unit == "per_second":
        return f"{value:.1f} images/s"
    if unit == "count":
        text = _with_suffix(value, gmk, ".3g", ".0f")
        return f"{text} MACs" if name == "flops" else text
    return f"{value:.4g}"
