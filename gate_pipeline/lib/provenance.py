"""Content hashes that make a decision reproducible: what artifacts, whitelist and config it came from."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gate_pipeline import __version__
from gate_pipeline.lib.storage import sha256_bytes

MANIFEST_COLUMNS: tuple[str, ...] = ("run_path", "gate_sha256", "drift_sha256", "metrics_sha256")


def _manifest_cells(col: pd.Series) -> np.ndarray | None:
    """The column as manifest text ("" for None), or None when a cell is neither str nor None."""
    obj = col.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(obj, skipna=True) not in ("string", "empty"):
        return None
    nulls = pd.isna(obj)
    if nulls.any():
        # Only None becomes ""; any other null (NaN, pd.NA) keeps str(v) as before: use the exact path.
        if any(v is not None for v in obj[nulls]):
            return None
        obj = obj.copy()
        obj[nulls] = ""
    return obj


def artifact_manifest_sha256(history: pd.DataFrame) -> str:
    """sha256 over the sorted (run_path, file hashes) of every accepted run: same artifacts → same hash."""
    cols = list(MANIFEST_COLUMNS)
    cells = [_manifest_cells(history[c]) for c in cols]
    if all(c is not None for c in cells):
        # Whole columns instead of itertuples: the same tab-joined text per run, far fewer Python steps.
        lines = sorted(map("\t".join, zip(*(c.tolist() for c in cells), strict=True)))
    else:
        lines = sorted(
            "\t".join("" if v is None else str(v) for v in row)
            for row in history[cols].itertuples(index=False)
        )
    return sha256_bytes("\n".join(lines).encode())


def config_sha256(parts: dict[str, bytes]) -> str:
    """One hash over every config file the decision depends on (name + content hash, sorted by name)."""
    return sha256_bytes(
        "\n".join(f"{name}\t{sha256_bytes(data)}" for name, data in sorted(parts.items())).encode()
    )


def provenance(
    history: pd.DataFrame, whitelist_sha256: str, config_files: dict[str, bytes]
) -> dict[str, str]:
    return {
        "artifact_manifest_sha256": artifact_manifest_sha256(history),
        "whitelist_sha256": whitelist_sha256,
        "config_sha256": config_sha256(config_files),
        "code_version": __version__,
    }
