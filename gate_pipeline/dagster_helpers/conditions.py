"""Automation condition: rollout_series follows its daily parent by event ids, not by tick order.

`eager()` decides "which came first" only to one automation tick (dagster#24650): a day classified while
the series was being materialized, or in the same tick as another run's series finished, counts as handled
and never reaches the decision. So the series records the newest classified_runs event id it could see
before reading its inputs, and this condition asks for it again whenever a newer one exists.
"""

import dagster as dg

SEEN_EVENT_ID = "classified_runs_event_id"


def latest_event_id(instance: dg.DagsterInstance, key: dg.AssetKey) -> int | None:
    """Storage id of the newest materialization of any partition of ``key`` (one asset-record query)."""
    records = instance.get_asset_records([key])
    record = records[0].asset_entry.last_materialization_record if records else None
    return record.storage_id if record else None


def seen_event_id(instance: dg.DagsterInstance, key: dg.AssetKey) -> int | None:
    """The parent event id ``key``'s latest materialization recorded (``SEEN_EVENT_ID``), if any."""
    event = instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event else None
    value = materialization.metadata.get(SEEN_EVENT_ID) if materialization else None
    return value.value if isinstance(value, dg.IntMetadataValue) else None


class ParentNewerThanSeen(dg.AutomationCondition):
    """True while ``parent`` has a materialization newer than the one the target's latest run had seen."""

    def __init__(self, parent: str):
        self._parent = dg.AssetKey(parent)

    @property
    def description(self) -> str:
        return f"{self._parent.to_user_string()} updated after the latest materialization read it"

    @property
    def name(self) -> str:
        return "parent_newer_than_seen"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        instance = context.asset_graph_view.instance
        latest = latest_event_id(instance, self._parent)
        seen = seen_event_id(instance, context.key)
        behind = latest is not None and (seen is None or latest > seen)
        return dg.AutomationResult(
            context=context,
            true_subset=context.candidate_subset if behind else context.get_empty_subset(),
        )


def follows_parent(parent: str) -> dg.AutomationCondition:
    """Request the target when ``parent`` is newer than what it read, once nothing upstream or itself runs.
    After a failed run it waits for the next parent update instead of retrying every tick."""
    return (
        ParentNewerThanSeen(parent)
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & (~dg.AutomationCondition.execution_failed() | dg.AutomationCondition.any_deps_updated())
    ).with_label(f"follows {parent}")


def eager_after_series(
    series: str = "rollout_series", parent: str = "classified_runs"
) -> dg.AutomationCondition:
    """``eager()``, held while ``series`` has not read its parent's newest materialization (or that parent is
    being materialized) and is not requested in the same tick. For assets that follow the whitelist as well
    as the series (timeline, decision): after a whitelist edit its observation comes first, and a decision
    published then would rest on runs still classified with the old whitelist; it follows the series instead,
    in the same request as the series when the series is requested."""
    behind = ParentNewerThanSeen(parent) | dg.AutomationCondition.any_deps_in_progress()
    waiting = dg.AutomationCondition.any_deps_match(
        behind & ~dg.AutomationCondition.will_be_requested()
    ).allow(dg.AssetSelection.assets(series))
    return (dg.AutomationCondition.eager() & ~waiting).with_label(f"eager, after {series} caught up")
