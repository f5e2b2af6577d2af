"""Partitions in the browser: only the sample's real days exist, a day's page shows that day's own counts, and
the backfill dialog offers exactly those days."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime

import pandas as pd
import pytest

from gate_pipeline_tests.e2e.test_ui_browser import (  # noqa: F401 (page is a fixture)
    dismiss_community_dialog,
    page,
    screenshot,
    wait_for_texts,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

DAY = "2026-03-08"  # 7 run folders, one a retry reusing a run_id: 6 accepted, 1 duplicate


@pytest.fixture(scope="module", autouse=True)
def no_community_dialog(sample_services):
    """Mark Dagster's first-visit dialog as seen on the instance, so it never covers a button here."""
    sample_services.services.graphql("mutation { setNuxSeen }")


def test_partitions_page_shows_exactly_the_sample_days(page, sample_services):  # noqa: F811
    days = sample_services.days
    assert len(days) == 12
    page.goto(f"{sample_services.url}/assets/run_table?view=partitions", wait_until="networkidle")
    text = wait_for_texts(page, [f"Materialized ({len(days)})", days[0], days[-1]], "run_table partitions")
    # Nothing but real days: no missing square, no calendar day outside the sample (e.g. today).
    assert not re.search(r"Missing \([1-9]", text), text[:2000]
    today = datetime.now(UTC).date().isoformat()
    assert today not in text
    shown = set(re.findall(r"\b2\d{3}-\d{2}-\d{2}\b", text))
    assert shown <= set(days), shown - set(days)
    screenshot(page, sample_services, "run_table_partitions_real_days", full_page=False)


def test_one_days_page_shows_that_days_counts(page, sample_services):  # noqa: F811
    table = pd.read_parquet(sample_services.data / "run_table" / f"{DAY}.parquet")
    runs = [p for p in (sample_services.artifacts / DAY).iterdir() if p.is_dir()]
    assert (len(table), len(runs)) == (6, 7)
    page.goto(
        f"{sample_services.url}/assets/run_table?view=partitions&partition={DAY}", wait_until="networkidle"
    )
    text = wait_for_texts(
        page, [DAY, "runs_accepted", "duplicates_quarantined", "run_total_runs_accepted"], DAY
    )
    values = _metadata_values(text)
    assert values.get("runs_accepted") == "6", values
    assert values.get("duplicates_quarantined") == "1", values
    assert values.get("runs_in") == "7", values
    assert values.get("run_total_runs_accepted") == "71", values
    screenshot(page, sample_services, f"run_table_{DAY}")

    page.goto(
        f"{sample_services.url}/assets/raw_runs?view=partitions&partition={DAY}", wait_until="networkidle"
    )
    text = wait_for_texts(page, ["runs_discovered", "files_read_by_kind"], f"raw_runs {DAY}")
    assert _metadata_values(text).get("runs_discovered") == "7"
    kinds = Counter(f.name for f in (sample_services.artifacts / DAY).rglob("*.json"))
    assert kinds["drift_report.json"] == 5 and kinds["metrics.json"] == 4


def test_backfill_dialog_offers_only_the_real_days(page, sample_services):  # noqa: F811
    days = sample_services.days
    page.goto(f"{sample_services.url}/assets/classified_runs", wait_until="networkidle")
    dismiss_community_dialog(page)  # it can show up late, over the button
    page.get_by_role("button", name=re.compile(r"Materialize")).first.click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for(state="visible")
    # With dynamic partitions the dialog opens with no partition selected ("0 partitions"); "All" selects
    # every registered day: the 12 real days, nothing else.
    dialog.get_by_text("All", exact=True).first.click()
    page.wait_for_function(
        "n => document.querySelector('[role=dialog]').innerText.includes(n + ' partitions')",
        arg=len(days),
        timeout=30_000,
    )
    text = dialog.inner_text()
    print(f"--- backfill dialog ---\n{text[:3000]}")
    screenshot(page, sample_services, "classified_runs_backfill_dialog", full_page=False)
    page.keyboard.press("Escape")
    assert f"{len(days)} partitions" in text, text[:3000]
    assert "cannot be materialized" not in text
    assert datetime.now(UTC).date().isoformat() not in text


def _metadata_values(text: str) -> dict[str, str]:
    """Label → the value on the following line, as the metadata table renders in the page text."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return {label: value for label, value in zip(lines, lines[1:], strict=False)}
