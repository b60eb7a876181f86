"""Sources of a warm start: studies, ``(storage, name)`` pairs or names, resolved once."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

import optuna
from optuna.storages import BaseStorage

from neuromosaic_optuna import _compat
from neuromosaic_optuna.config import ConfigError
from neuromosaic_optuna.storage import make_storage, mask_url

#: What a source may be: a study, ``(storage or URL, study name)``, or a study name.
SourceLike = optuna.Study | tuple[str | BaseStorage, str] | str

# --------------------------------------------------------------------------- sources


class _Source(NamedTuple):
    study: optuna.Study
    label: str  # masked storage description, for people
    key: str  # stable hash identifying (storage, study name)


def _storage_label(storage: BaseStorage) -> tuple[str, str]:
    """``(label, identity)`` of a storage: a masked description and a key for hashing."""
    inner = _compat.unwrap_cached_storage(storage)
    url = getattr(inner, "url", None)
    if isinstance(url, str):
        return mask_url(url), mask_url(url)
    path = _compat.journal_file_path(inner)
    if path is not None:
        return f"journal:{path}", f"journal:{path}"
    return "memory", f"memory:{id(inner)}"


def _resolve_source(source: SourceLike, default_storage: str | BaseStorage) -> _Source:
    if isinstance(source, optuna.Study):
        study = source
    else:
        if isinstance(source, str):
            storage, name = default_storage, source
        elif isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], str):
            storage, name = source
        else:
            raise TypeError("source: expected an optuna.Study, a (storage, study_name) pair or "
                            f"a study name, got {source!r}")
        if isinstance(storage, str):
            storage = make_storage(storage, heartbeat_interval=None)
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            label = _storage_label(storage)[0]
            raise ConfigError("source", f"no study {name!r} in {label}; run the source study "
                              "first or check the name") from None
    label, identity = _storage_label(_compat.storage_of(study))
    key = hashlib.sha1(f"{identity}\n{study.study_name}".encode()).hexdigest()[:16]
    return _Source(study, label, key)


def _as_sources(source: SourceLike | Sequence[SourceLike]) -> list[SourceLike]:
    if isinstance(source, (optuna.Study, str)):
        return [source]
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], str) \
            and isinstance(source[0], (str, BaseStorage)):
        return [(source[0], source[1])]
    return list(source)
