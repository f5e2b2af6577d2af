"""lib/whatif.py's small pieces: when GO came, what a what-if may be called, when a table's CSV is reused."""

import pandas as pd
import pytest

from gate_pipeline.lib.stats import table_csv_bytes
from gate_pipeline.lib.whatif import WhatIfError, check_name, default_name, first_go, same_frame


def test_first_go_and_the_latest_run_of_go_days():
    days = pd.DataFrame({"date": ["d1", "d2", "d3", "d4", "d5"], "v": ["HOLD", "GO", "HOLD", "GO", "GO"]})
    assert first_go(days, "v") == ("d2", "d4")
    assert first_go(days.assign(v=["GO"] * 5), "v") == ("d1", "d1")
    assert first_go(days.assign(v=["GO", "GO", "HOLD", "NO_GO", "HOLD"]), "v") == ("d1", None)
    assert first_go(days.assign(v=["HOLD"] * 5), "v") == (None, None)


def test_names_are_one_folder():
    assert default_name("s3://bucket/ci/candidates/wl-2026") == "wl-2026"
    assert default_name("/tmp/my candidate/") == "my-candidate"
    assert default_name("/tmp/...") == "candidate"
    assert check_name("a.b_c-1") == "a.b_c-1"
    for bad in ("../x", "a/b", "", ".hidden", "x" * 65):
        with pytest.raises(WhatIfError, match="names the folder <out>/whatif/<name>/"):
            check_name(bad)


def test_same_frame_only_when_the_csv_text_is_the_same():
    base = pd.DataFrame(
        {
            "run_id": ["a", "b", "c"],
            "ts": pd.to_datetime(["2026-03-01", "2026-03-02", None], utc=True),
            "rate": [0.0, 0.5, float("nan")],
            "n": [1, 2, 3],
            "mixed": ["x", None, 1.0],
        }
    )
    assert same_frame(base, base.copy())
    assert table_csv_bytes(base) == table_csv_bytes(base.copy())
    differs = [
        base.assign(rate=[-0.0, 0.5, float("nan")]),  # equal by ==, "-0.0" in the CSV
        base.assign(mixed=["x", None, 1]),  # 1 == 1.0, "1" in the CSV
        base.assign(n=[1.0, 2.0, 3.0]),  # another dtype
        base.assign(run_id=["a", "b", "d"]),
        base.assign(ts=pd.to_datetime(["2026-03-01", "2026-03-03", None], utc=True)),
        base[["n", "run_id", "ts", "rate", "mixed"]],
        base.head(2),
    ]
    for other in differs:
        assert not same_frame(base, other), other
