"""Content-addressed result caches (RPR measurements, attack curves) beside the model cache.

A result is computed once per output root and reused by every run that asks for the same thing.
Layout, under ``<cache root>/<kind>/`` (kind: ``rpr``, ``attack``):

    <family>/<member>/arrays.npz   the result's columns (one row per datapoint)
    <family>/<member>/key.json     what was measured (the key, readable)
    <family>/<member>/COMPLETE     written last: a folder without it never counts

``family`` is a digest of everything that determines a row's value except which rows (model weights,
scheme, seed, MAX_STEPS, code version, ...); ``member`` is a digest of the rows' ids, in order. A
result whose rows are independent of each other (RPR: a point's numbers depend only on the model,
seed, its image, label and dataset index) can also be cut out of a larger member of its family, so
RPR of 2,000 test points reuses a measurement of all 10,000.

Complete or absent: an entry is written into a temporary folder beside it, the marker last, then
renamed into place in one step; a killed writer leaves only a ``.tmp-*`` folder, which is never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from robustlab.runs.identity import digest
from robustlab.runs.io import write_arrays, write_json

log = logging.getLogger(__name__)

ARRAYS = "arrays.npz"
KEY = "key.json"
COMPLETE = "COMPLETE"
ROW_ID = "row_id"  # the column a row is found by when a result is cut out of a larger one


def row_ids(*columns) -> np.ndarray:
    """One 63-bit id per row from the bytes of every column's row (e.g. dataset index, label, image)."""
    arrays = [np.ascontiguousarray(np.asarray(c)).reshape(len(c), -1) for c in columns]
    n = len(arrays[0])
    ids = np.empty(n, dtype=np.int64)
    for i in range(n):
        h = hashlib.blake2b(digest_size=8)
        for a in arrays:
            h.update(a[i].tobytes())
        ids[i] = int.from_bytes(h.digest(), "little") >> 1
    return ids


def rows_digest(ids: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()[:16]


class ResultCache:
    """One kind of cached result under ``root/kind``; ``root`` None: no cache (every lookup misses)."""

    def __init__(self, root: str | Path | None, kind: str):
        self.folder = None if root is None else Path(root) / kind
        self.kind = kind

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def entry(self, family: str, member: str) -> Path:
        return self.folder / family / member

    @staticmethod
    def family(key: dict) -> str:
        return digest(key)

    @staticmethod
    def _read(folder: Path) -> dict[str, np.ndarray] | None:
        if not (folder / COMPLETE).is_file():
            return None
        try:
            with np.load(folder / ARRAYS) as data:
                return {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError):  # unreadable despite its marker: a miss, never an error
            log.warning("%s cache entry %s is unreadable; measuring again", folder.parent.parent.name, folder)
            return None

    def load(self, family: str, ids: np.ndarray) -> tuple[dict[str, np.ndarray], str] | None:
        """The cached rows ``ids`` (in that order) and the entry's name, or None.

        The entry with exactly these rows first; else any complete entry of the family holding them all."""
        if not self.enabled:
            return None
        exact = self.entry(family, rows_digest(ids))
        found = self._read(exact)
        if found is not None:
            return found, f"{family}/{exact.name}"
        folder = self.folder / family
        for member in sorted(folder.iterdir()) if folder.is_dir() else []:
            if member.name.startswith(".") or member == exact:
                continue
            arrays = self._read(member)
            if arrays is None or ROW_ID not in arrays:
                continue
            position = {int(r): i for i, r in enumerate(arrays[ROW_ID])}
            if all(int(r) in position for r in ids):
                take = np.array([position[int(r)] for r in ids], dtype=np.int64)
                return {name: column[take] for name, column in arrays.items()}, f"{family}/{member.name} (rows of)"
        return None

    def store(self, family: str, ids: np.ndarray, arrays: dict[str, np.ndarray], key: dict) -> Path | None:
        """Write one entry, complete or not at all; an entry already there is kept (same key, same result)."""
        if not self.enabled:
            return None
        final = self.entry(family, rows_digest(ids))
        if (final / COMPLETE).is_file():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            write_arrays(tmp / ARRAYS, **arrays, **{ROW_ID: np.asarray(ids, dtype=np.int64)})
            write_json(tmp / KEY, key)
            (tmp / COMPLETE).write_text("complete\n")  # last: only a full folder carries it
            if final.exists():  # an incomplete leftover (no marker): replace it
                shutil.rmtree(final)
            os.replace(tmp, final)
        except OSError as error:
            if (final / COMPLETE).is_file():  # a parallel job wrote the same entry first
                return final
            log.warning("could not write the %s cache entry %s: %s", self.kind, final, error)
            return None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return final


def key_text(key: dict) -> str:
    """The key as one short JSON line for a log line."""
    return json.dumps(key, sort_keys=True, default=str)[:300]
