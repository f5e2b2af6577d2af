"""The Dagster UI in headless Chromium on the materialized sample: the asset graph/catalog lists every asset of
Definitions, and the decision asset's page shows its checks and metadata. Screenshots go to the module's
output folder; the asset graph one is also copied to docs/img/asset_graph.png for the README."""

from __future__ import annotations

import contextlib
import os
import re
import shutil

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from gate_pipeline_tests.e2e.conftest import asset_keys_of, check_names_of
from gate_pipeline_tests.e2e.services import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

DECISION_ASSET = "gate_decision"
README_IMAGE = REPO_ROOT / "docs" / "img" / "asset_graph.png"
DECISION_IMAGE = REPO_ROOT / "docs" / "img" / "decision_page.png"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def page(browser, sample_services):
    """One tab for the module; the first-visit community dialog is dismissed once (remembered by the profile)."""
    tab = browser.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(f"{sample_services.url}/asset-groups", wait_until="networkidle")
    # The dialog shows once per instance (the instance remembers the dismissal), not once per browser profile.
    if sample_services.services.graphql("query { shouldShowNux }")["shouldShowNux"]:
        dismiss_community_dialog(tab)
    yield tab
    tab.close()


def dismiss_community_dialog(tab) -> None:
    """Click "Skip" on the "Join the Dagster community" dialog if it shows up (it appears after load)."""
    skip = tab.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=8_000)
    except PlaywrightTimeoutError:  # no dialog this time: nothing to dismiss
        return
    skip.click()
    skip.wait_for(state="hidden")


def body_text(tab) -> str:
    return tab.inner_text("body")


def wait_for_texts(tab, texts: list[str], what: str) -> str:
    """Wait until every text appears in the page body; fail naming the missing ones."""
    # On timeout, fall through and report exactly which texts are missing.
    with contextlib.suppress(PlaywrightTimeoutError):
        tab.wait_for_function(
            "texts => texts.every(t => document.body.innerText.includes(t))",
            arg=list(texts),
            timeout=TIMEOUT_MS,
        )
    text = body_text(tab)
    missing = [t for t in texts if t not in text]
    assert not missing, f"{what}: not shown: {missing}\n--- page text ---\n{text[:3000]}"
    return text


def screenshot(tab, sample_services, name: str, full_page: bool = True):
    path = sample_services.output_dir / f"{name}.png"
    tab.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    print(f"screenshot: {path}")
    return path


def test_asset_graph_lists_every_asset(page, sample_services):
    defs = sample_services.definitions()
    keys = asset_keys_of(defs)
    graph = defs.resolve_asset_graph()
    groups = sorted({graph.get(_key(k)).group_name for k in keys})
    url = sample_services.url

    # Graph view: groups start collapsed; Alt+E (needs page focus) expands all and puts them in the URL,
    # and loading that URL fits the expanded layout into the viewport.
    page.goto(f"{url}/asset-groups", wait_until="networkidle")
    wait_for_texts(page, groups, "asset graph groups")
    page.get_by_text("Global asset lineage").first.click()
    page.keyboard.press("Alt+KeyE")
    page.wait_for_url(re.compile(r"expanded="))
    page.goto(page.url, wait_until="networkidle")
    graph_text = wait_for_texts(page, groups, "asset graph after expanding groups")
    page.wait_for_timeout(1_000)  # let the fitted layout settle before the screenshot
    graph_png = screenshot(page, sample_services, "asset_graph", full_page=False)
    # Long names are elided in the nodes ("unkno…_frequencies"): match the shown prefix and suffix.
    not_in_graph = [k for k in keys if not _shown_in_graph(k, graph_text)]
    assert not not_in_graph, f"asset graph lacks nodes for {not_in_graph}"

    # Catalog (list) view: every asset key by name, including observable source assets.
    page.set_viewport_size({"width": 1600, "height": max(1000, 140 * len(keys) + 400)})
    try:
        page.goto(f"{url}/assets", wait_until="networkidle")
        wait_for_texts(page, keys, "asset catalog")
        screenshot(page, sample_services, "asset_catalog")
    finally:
        page.set_viewport_size({"width": 1600, "height": 1000})

    # Refresh the README's screenshot on request only, so a test run never dirties the work tree.
    if os.environ.get("UPDATE_README_SCREENSHOT"):
        README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(graph_png, README_IMAGE)


@pytest.mark.parametrize("asset_key", [DECISION_ASSET, "run_table"])
def test_asset_page_shows_checks_and_metadata(page, sample_services, asset_key):
    defs = sample_services.definitions()
    assert asset_key in asset_keys_of(defs)
    checks = check_names_of(defs, asset_key)
    assert checks, f"{asset_key} declares no asset checks"
    metadata = sample_services.services.latest_materialization_metadata(asset_key)
    url = f"{sample_services.url}/assets/{asset_key}"

    # Overview: description, materialization metadata labels and their scalar values.
    page.goto(url, wait_until="networkidle")
    description = defs.resolve_asset_graph().get(_key(asset_key)).description or ""
    expected = [asset_key, "Latest materialization", *description.split()[:6]]
    expected += [label for label in metadata if not label.startswith("dagster/")]
    if "dagster/row_count" in metadata:
        expected += ["Row count", f"{metadata['dagster/row_count']:,}"]
    text = wait_for_texts(page, expected, f"{asset_key} overview")
    scalars = {k: v for k, v in metadata.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    unreadable = [k for k, v in scalars.items() if not any(t in text for t in _number_texts(v))]
    assert not unreadable, f"{asset_key}: numeric metadata values not shown: {unreadable}"
    screenshot(page, sample_services, f"{asset_key}_overview")

    # Checks tab: every declared check, with its latest evaluation result.
    page.goto(f"{url}?view=checks", wait_until="networkidle")
    text = wait_for_texts(page, [*checks, "Evaluation result"], f"{asset_key} checks")
    assert re.search(r"Passed|Failed|Succeeded", text), f"{asset_key}: no check outcome shown"
    screenshot(page, sample_services, f"{asset_key}_checks")


def test_partitions_page_shows_sample_days(page, sample_services):
    page.goto(f"{sample_services.url}/assets/run_table?view=partitions", wait_until="networkidle")
    text = wait_for_texts(page, ["Materialized", "Missing"], "run_table partitions")
    assert f"Materialized ({len(sample_services.days)})" in text
    screenshot(page, sample_services, "run_table_partitions", full_page=False)


def test_automation_page_lists_sensors(page, sample_services):
    names = sorted(s.name for s in (sample_services.definitions().sensors or []))
    assert names == ["artifact_sensor", "automation_sensor", "config_sensor"]
    page.goto(f"{sample_services.url}/automation", wait_until="networkidle")
    wait_for_texts(page, names, "automation page")
    screenshot(page, sample_services, "automation", full_page=False)


def _shown_in_graph(key: str, text: str) -> bool:
    """The key's node label is in the text, whole or elided as ``prefix…suffix``."""
    if key in text.split("\n"):
        return True
    for line in text.split("\n"):
        head, sep, tail = line.strip().partition("…")
        if sep and head and key.startswith(head) and key.endswith(tail) and len(head) + len(tail) < len(key):
            return True
    return False


def _number_texts(value: float) -> list[str]:
    """Ways the UI may print a number: as given (shortest round-trip, like JS), or ints with separators."""
    texts = [repr(value)]
    if isinstance(value, int):
        texts.append(f"{value:,}")
    elif value.is_integer():
        texts.append(str(int(value)))
    return texts


def _key(user_string: str):
    import dagster as dg

    return dg.AssetKey.from_user_string(user_string)


def test_decision_page_shows_the_rule_table_without_a_popup(page, sample_services):
    """The rule table is native table metadata: rule names, verdicts, intervals and reasons are on the page
    itself, not behind a "Show Markdown" link."""
    metadata = sample_services.services.latest_materialization_metadata(DECISION_ASSET)
    page.set_viewport_size({"width": 1600, "height": 1800})
    try:
        page.goto(f"{sample_services.url}/assets/{DECISION_ASSET}", wait_until="networkidle")
        checks = check_names_of(sample_services.definitions(), DECISION_ASSET)
        rule_names = [name.removeprefix("rule_") for name in checks if name.startswith("rule_")]
        assert rule_names, "gate_decision has no rule checks"
        expected = ["ci_low", "ci_high", "threshold", "verdict_change", *rule_names, metadata["verdict"]]
        wait_for_texts(page, expected, "decision page rule table")
        png = screenshot(page, sample_services, "decision_page", full_page=False)
    finally:
        page.set_viewport_size({"width": 1600, "height": 1000})
    if os.environ.get("UPDATE_README_SCREENSHOT"):
        shutil.copyfile(png, DECISION_IMAGE)
