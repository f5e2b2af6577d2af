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

from gate_pipeline_tests.e2e.conftest import asset_keys_of, check_names_of, start_sample_services
from gate_pipeline_tests.e2e.services import REPO_ROOT
from gate_pipeline_tests.e2e.test_automation_e2e import (
    WAIT_S,
    materializations,
    wait_until,
    whitelist_check,
    whitelist_known_drift,
)

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


def dismiss_community_dialog(tab, timeout_ms: int = 8_000) -> None:
    """Click "Skip" on the "Join the Dagster community" dialog if it shows up (it appears after load)."""
    skip = tab.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=timeout_ms)
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
    # Tall enough that the fitted graph of every group stays at a zoom where names are readable.
    page.set_viewport_size({"width": 1600, "height": 1500})
    page.goto(f"{url}/asset-groups", wait_until="networkidle")
    wait_for_texts(page, groups, "asset graph groups")
    page.get_by_text("Global asset lineage").first.click()
    page.keyboard.press("Alt+KeyE")
    page.wait_for_url(re.compile(r"expanded="))
    page.goto(page.url, wait_until="networkidle")
    graph_text = wait_for_texts(page, groups, "asset graph after expanding groups")
    page.wait_for_timeout(1_000)  # let the fitted layout settle before the screenshot
    dismiss_community_dialog(page, timeout_ms=2_000)  # it may show up late, over the graph
    graph_png = screenshot(page, sample_services, "asset_graph", full_page=False)
    # Every name is whole in its node: the zoomed-out node cuts names longer than 18 characters
    # ("warn_thr…mendation"), so asset names are kept that short.
    lines = {line.strip() for line in graph_text.split("\n")}
    not_whole = [k for k in keys if k not in lines]
    elided = sorted(line for line in lines if "…" in line and not line.startswith("Materialize"))
    assert not not_whole and not elided, f"asset graph: not shown whole {not_whole}, elided {elided}"

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


def test_decision_page_shows_the_chart_and_rule_table_without_a_popup(page, sample_services):
    """The chart is an inline image the browser decoded (not a "[Show Markdown]" link), drawn with the chart
    rule's threshold; the rule table is native table metadata with rule names, verdicts and intervals."""
    metadata = sample_services.services.latest_materialization_metadata(DECISION_ASSET)
    chart_rule = metadata["chart_legend"].split()[0]  # "fail_rate per day, …"
    rule = _latest_rule_evidence(sample_services, f"rule_{chart_rule}")
    page.set_viewport_size({"width": 1920, "height": 1500})  # verdict, chart and rule table in one view
    try:
        page.goto(f"{sample_services.url}/assets/{DECISION_ASSET}", wait_until="networkidle")
        checks = check_names_of(sample_services.definitions(), DECISION_ASSET)
        rule_names = [name.removeprefix("rule_") for name in checks if name.startswith("rule_")]
        assert rule_names, "gate_decision has no rule checks"
        expected = ["chart_legend", "ci_low", "ci_high", "threshold", "verdict_change", *rule_names]
        text = wait_for_texts(page, [*expected, metadata["verdict"]], "decision page rule table")
        chart = page.locator("img[src^='data:image/svg+xml']")
        chart.wait_for(state="visible")
        width, src = chart.evaluate("img => [img.naturalWidth, decodeURIComponent(img.src)]")
        assert width > 0, "the chart image did not decode"
        shown = f"{rule['comparator']} {rule['threshold']:.3g}"  # e.g. "<= 0.1", as in the rule table
        assert shown.replace("<", "&lt;").replace(">", "&gt;") + "</text>" in src, f"chart lacks {shown}"
        assert f"threshold ({shown} now)" in text
        row = page.locator("tr", has=page.get_by_text("chart_legend", exact=True)).first
        assert "Show Markdown" not in body_text(page).split("chart_legend")[0], "chart behind a popup"
        assert row.is_visible()
        page.get_by_text("verdict", exact=True).first.scroll_into_view_if_needed()
        png = screenshot(page, sample_services, "decision_page", full_page=False)
    finally:
        page.set_viewport_size({"width": 1600, "height": 1000})
    if os.environ.get("UPDATE_README_SCREENSHOT"):
        shutil.copyfile(png, DECISION_IMAGE)


def _latest_rule_evidence(sample_services, check: str) -> dict:
    """The metadata of a rule check's latest evaluation (verdict, comparator, threshold, …)."""
    rows = sample_services.services.asset_check_executions(DECISION_ASSET, check, limit=1)[check]
    return rows[0]["metadata"]


def test_hold_check_is_a_warning_not_a_failure(page, sample_services):
    """A rule that holds for more evidence shows the warning icon (yellow), not the red "cancel" icon."""
    executions = sample_services.services.asset_check_executions(DECISION_ASSET)
    verdicts = {name: rows[0]["metadata"].get("verdict") for name, rows in executions.items() if rows}
    holds = sorted(name for name, verdict in verdicts.items() if verdict == "HOLD")
    passes = sorted(name for name, verdict in verdicts.items() if verdict == "PASS")
    assert "rule_fail_rate" in holds and passes, verdicts
    page.goto(f"{sample_services.url}/assets/{DECISION_ASSET}?view=checks", wait_until="networkidle")
    wait_for_texts(page, ["rule_fail_rate", "Evaluation result"], "gate_decision checks")
    icons = check_list_icons(page, [*holds, *passes])
    assert {name: icons[name] for name in holds} == {name: "warning_outline" for name in holds}, icons
    assert {name: icons[name] for name in passes} == {name: "check_circle" for name in passes}, icons
    screenshot(page, sample_services, "gate_decision_hold_checks", full_page=False)


def check_list_icons(tab, names: list[str]) -> dict[str, str]:
    """The status icon (its aria-label) of each named check in the Checks tab's list: the smallest element
    whose first line is the name (or the name middle-truncated, "rule_warn_fail…te_per_stratum") and that
    holds a status icon (warning_outline for a WARN failure, cancel for an ERROR one, check_circle)."""
    return tab.evaluate(
        r"""names => Object.fromEntries(names.map(name => {
            const STATUS = ['warning_outline', 'check_circle', 'cancel', 'dot', 'status'];
            const shows = line => {
                const [head, tail] = line.split('\u2026');
                return line === name || (tail !== undefined && head.length > 3 && name.startsWith(head)
                    && name.endsWith(tail) && head.length + tail.length < name.length);
            };
            const statusIcon = el => [...el.querySelectorAll('[role=img]')].find(i =>
                STATUS.includes(i.getAttribute('aria-label')));
            const rows = [...document.querySelectorAll('a, button, div')].filter(el =>
                el.innerText && shows(el.innerText.split('\n')[0].trim()) && statusIcon(el));
            rows.sort((a, b) => a.querySelectorAll('*').length - b.querySelectorAll('*').length);
            return [name, rows.length ? statusIcon(rows[0]).getAttribute('aria-label') : null];
        }))""",
        names,
    )


# ------------------------------------------------------------------ a whitelist edit, seen in the browser
WHITELIST_CHECK = "classified_with_current_whitelist"


@pytest.fixture(scope="module")
def edited_services(tmp_path_factory):
    """Services on a private copy of the sample: this module's whitelist test edits its config."""
    with start_sample_services(tmp_path_factory.mktemp("e2e_ui_whitelist")) as running:
        yield running


@pytest.mark.timeout(
    1200
)  # its own services, a backfill and the automation after it: ~10 min on a busy machine
def test_whitelist_edit_shows_stale_then_before_after(browser, edited_services):
    """After a whitelist edit the check "classified with the current whitelist" on classified_runs is shown
    failed (a warning); after the backfill it passes and the decision's metadata shows before → after."""
    services, url = edited_services.services, edited_services.url
    tab = browser.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    try:
        tab.goto(f"{url}/asset-groups", wait_until="networkidle")
        if services.graphql("query { shouldShowNux }")["shouldShowNux"]:
            dismiss_community_dialog(tab)
        new_sha = whitelist_known_drift(edited_services.config / "unknown_whitelist.json")

        # config_sensor observes the edit (no run) and reports the check failed for every stored day.
        stale = whitelist_check(services, lambda e: e["success"] is False)
        assert stale["metadata"]["stale_days"] == len(edited_services.days)
        tab.goto(
            f"{url}/assets/classified_runs?view=checks&checkDetail={WHITELIST_CHECK}",
            wait_until="networkidle",
        )
        text = wait_for_texts(tab, [WHITELIST_CHECK, "stale_days", "Failed"], "stale whitelist check")
        assert f"{len(edited_services.days)}" in text.split("stale_days", 1)[1][:40]
        assert check_list_icons(tab, [WHITELIST_CHECK]) == {WHITELIST_CHECK: "warning_outline"}
        screenshot(tab, edited_services, "classified_runs_stale_whitelist", full_page=False)

        # The backfill re-classifies every day; automation publishes a decision on the edited whitelist.
        backfill_id = services.launch_partition_backfill(
            ["classified_runs"], partition_names=edited_services.days, title="browser whitelist edit"
        )
        backfill = services.wait_for_backfill(
            backfill_id, timeout=3 * WAIT_S
        )  # queued behind automation runs
        assert backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}, backfill

        def decision_on_new_whitelist():
            latest = materializations(services, DECISION_ASSET, limit=1)[0]
            return latest if latest["metadata"].get("whitelist_sha256") == new_sha else None

        decision = wait_until(
            services, "gate_decision on the edited whitelist", decision_on_new_whitelist, timeout=3 * WAIT_S
        )
        assert "whitelist" in decision["metadata"]["changed_since_previous"]
        whitelist_check(services, lambda e: e["success"] is True)

        tab.goto(
            f"{url}/assets/classified_runs?view=checks&checkDetail={WHITELIST_CHECK}",
            wait_until="networkidle",
        )
        wait_for_texts(tab, [WHITELIST_CHECK, "stale_days", "Succeeded"], "current whitelist check")
        assert check_list_icons(tab, [WHITELIST_CHECK]) == {WHITELIST_CHECK: "check_circle"}

        tab.set_viewport_size({"width": 1920, "height": 1200})
        tab.goto(f"{url}/assets/{DECISION_ASSET}", wait_until="networkidle")
        expected = [
            "before_after",
            "figure",
            "before",
            "after",
            "class occurrences, whitelisted",
            "whitelist",
        ]
        text = wait_for_texts(tab, expected, "decision before → after")
        table = text.split("before_after", 1)[1]
        assert "class occurrences, whitelisted" in table
        tab.get_by_text("before_after", exact=True).first.scroll_into_view_if_needed()
        screenshot(tab, edited_services, "decision_before_after", full_page=False)
    finally:
        tab.close()
