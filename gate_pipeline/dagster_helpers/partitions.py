"""Daily partitions: one dynamic partition per date folder (UTC day the run finished) that holds artifacts.

Only real days are partitions, so the UI's partition counts, the partitions page and the backfill dialog
show the ingested history and nothing else, and a backfill of "all" never builds an empty day. The
artifact sensor and the CLI register a day when its folder first appears inside the date window
(partitions.start_date .. today + partitions.max_future_days); folders outside it stay ignored.

Dynamic partition keys keep the order they were added in, and partition ranges (single-run backfills,
the CLI's run) follow that order. Days are kept in date order: a late-arriving older day is inserted by
re-adding the newer keys after it (removing a key drops only the key, never its materializations).
"""

from collections.abc import Iterable, Sequence

import dagster as dg

#: The partitions definition's name (the instance stores its keys under it).
DAYS_NAME = "days"
DAYS = dg.DynamicPartitionsDefinition(name=DAYS_NAME)


def daily_partitions() -> dg.DynamicPartitionsDefinition:
    return DAYS


def in_window(day: str, first: str, last: str) -> bool:
    return first <= day <= last


def ordered_additions(registered: Sequence[str], days: Iterable[str]) -> tuple[list[str], list[str]]:
    """(keys to remove, keys to add, in this order) so the registered keys become sorted and hold ``days``.

    New days later than every registered key are appended; a new day earlier than some registered key
    moves those later keys behind it (removed, then added again after it)."""
    new = sorted(set(days) - set(registered))
    if not new:
        return [], []
    moved = [key for key in registered if key > new[0]]
    return moved, sorted({*moved, *new})


def partition_requests(registered: Sequence[str], days: Iterable[str]) -> list:
    """The sensor's dynamic-partition requests that register ``days`` in date order (empty when known)."""
    remove, add = ordered_additions(registered, days)
    requests: list = [DAYS.build_delete_request(remove)] if remove else []
    return [*requests, DAYS.build_add_request(add)] if add else requests


def register_days(instance: dg.DagsterInstance, days: Iterable[str]) -> list[str]:
    """Add the days the instance does not know yet (in date order); returns the days added."""
    registered = instance.get_dynamic_partitions(DAYS_NAME)
    remove, add = ordered_additions(registered, days)
    for key in remove:
        instance.delete_dynamic_partition(DAYS_NAME, key)
    if add:
        instance.add_dynamic_partitions(DAYS_NAME, add)
    return sorted(set(add) - set(remove))


def forget_days(instance: dg.DagsterInstance, days: Iterable[str]) -> None:
    """Drop days whose folder is gone from the partitions (their past materializations stay in the log)."""
    for day in days:
        instance.delete_dynamic_partition(DAYS_NAME, day)


def key_range(instance: dg.DagsterInstance, days: Sequence[str]) -> tuple[str, str]:
    """First and last of ``days`` in the registered key order: the partition range that covers them."""
    position = {key: i for i, key in enumerate(instance.get_dynamic_partitions(DAYS_NAME))}
    ordered = sorted(days, key=lambda day: position[day])
    return ordered[0], ordered[-1]
