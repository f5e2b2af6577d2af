"""lib/whatif.py's small pieces: when GO came, what a what-if may be called."""

import pandas as pd
import pytest

from gate_pipeline.lib.whatif import WhatIfError, check_name, default_name, first_go


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
