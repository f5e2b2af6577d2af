"""Operating characteristics of the decision under continuous monitoring (issue 12): `make bench-decisions`.

Simulates seeded rollouts of one candidate policy with the default config (config/policy_constants.yaml,
phase `observe`) and re-evaluates the decision after every run 1..300 (and once a day at 40 runs/day),
for three engines side by side:

* sequential - the pipeline's default (anytime-valid confidence sequences, Holm over the NO_GO tests);
* fixed      - the same engine with `decision.interval: fixed` (exact fixed-sample intervals), as a
               one-off analysis would use it, here looked at after every run;
* old rules  - today's (pre-issue-12) point-estimate rules, re-implemented vectorized for this comparison
               ONLY (Wilson straddle for fail_rate, point estimates elsewhere, ROLLBACK on the point FAIL rate).

The sequential and fixed columns call the same functions the pipeline calls (lib.intervals.rate_pvalues,
lib.intervals.familywise_reject with the strata present so far, the mixture prior of lib.rules.inference);
a few whole-engine runs (rules.evaluate on a DataFrame) confirm the vectorized verdicts agree.

Prints a Markdown table (and writes it with --write to docs/DECISIONS.md between the BENCH markers).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gate_pipeline.lib import intervals as iv
from gate_pipeline.lib import rules
from gate_pipeline.lib.rules.inference import Spec

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "policy_constants.yaml"
DOC = REPO / "docs" / "DECISIONS.md"
STRATA = ("pinned", "unpinned", "unknown")
LOOKS, PER_DAY = 300, 40
GO, HOLD, NO_GO, ROLLBACK = 1, 0, -1, -2


@dataclass(frozen=True)
class Scenario:
    name: str
    fail: float  # FAIL rate of the candidate
    warn_fail: float  # WARN+FAIL rate in every stratum
    shares: tuple[float, float, float] = (0.45, 0.35, 0.20)  # pinned, unpinned, unknown
    must: str = ""
    interleaved_old_fail: float | None = None  # an older policy interleaving 50/50 (old rules decide on it)


SCENARIOS = [
    Scenario(
        "good: FAIL 5%, WARN+FAIL 20%", 0.05, 0.20, must="P(NO_GO or ROLLBACK) <= 5%, P(ROLLBACK) <= 1%"
    ),
    Scenario("bad: FAIL 15% (threshold 10%)", 0.15, 0.25, must="P(GO) <= 5%"),
    Scenario("rollback: FAIL 40% (trigger 25%)", 0.40, 0.45, must="ROLLBACK in >= 95%"),
    Scenario("clean: FAIL 2%, WARN+FAIL 10%", 0.02, 0.10, must="GO in >= 90% by run 300; median <= 2x fixed"),
    Scenario(
        "interleaved: new FAIL 2% / old FAIL 15%, 50/50",
        0.02,
        0.10,
        interleaved_old_fail=0.15,
        must="the decided hash never flips",
    ),
    Scenario("small unknown stratum (4%): FAIL 2%, WARN+FAIL 20%", 0.02, 0.20, shares=(0.56, 0.40, 0.04)),
]


@dataclass
class Sim:
    """R rollouts x T runs of one policy: outcome codes (0 PASS, 1 WARN, 2 FAIL), strata, unknown_rate."""

    outcome: np.ndarray
    stratum: np.ndarray
    unknown_rate: np.ndarray


def simulate(rng: np.random.Generator, r: int, t: int, fail: float, warn_fail: float, shares) -> Sim:
    u = rng.random((r, t))
    outcome = np.where(u < fail, 2, np.where(u < warn_fail, 1, 0))
    stratum = rng.choice(len(STRATA), size=(r, t), p=np.asarray(shares) / sum(shares))
    unknown_rate = rng.beta(2.0, 30.0, size=(r, t))  # typical unknowns: median about 0.056
    return Sim(outcome, stratum, unknown_rate)


# ---------------------------------------------------------------------------------------- the new engine


def new_verdicts(sim: Sim, cfg: rules.DecisionConfig, n_runs: np.ndarray | None = None) -> np.ndarray:
    """Decision after every run (R x T), the counted rules of the default observe phase, vectorized with the
    pipeline's own interval / test / multiplicity functions."""
    s, spec = cfg.decision, Spec.of(cfg.decision)
    rl = {r.name: r for r in cfg.rules_for()}
    fr, med, ps, rb, me = (
        rl["fail_rate"],
        rl["unknown_rate_median"],
        rl["warn_fail_rate_per_stratum"],
        rl["rollback_fail_rate"],
        rl["min_evidence"],
    )
    t = np.arange(1, sim.outcome.shape[1] + 1) if n_runs is None else n_runs
    k_fail = np.cumsum(sim.outcome == 2, axis=1)
    k_med = np.cumsum(sim.unknown_rate <= med.threshold, axis=1)
    pv = {}

    def rate(k, n, thr):
        a, b = spec.prior(thr)
        return iv.rate_pvalues(k, n, thr, spec.method, a, b)  # (above, below)

    pv["fail"] = rate(k_fail, t, fr.threshold)
    pv["med"] = rate(k_med, t, 0.5)  # the median rule: the rate of unknown_rate <= threshold against 0.5
    pv["rb"] = rate(k_fail, t, rb.threshold)
    strata_bad, strata_good, present = [], [], []
    for j in range(len(STRATA)):
        in_s = sim.stratum == j
        n_s = np.cumsum(in_s, axis=1)
        k_s = np.cumsum(in_s & (sim.outcome >= 1), axis=1)
        above, below = rate(k_s, n_s, ps.threshold)
        strata_bad.append(above)
        strata_good.append(below)
        present.append(n_s > 0)
    ones = np.ones_like(k_fail, dtype=bool)
    no_go_p = np.stack([pv["fail"][0], pv["med"][1], *strata_bad])
    no_go_present = np.stack([ones, ones, *present])
    rej, _ = iv.familywise_reject(no_go_p, s.alpha_no_go, s.multiplicity, no_go_present)
    any_no_go = rej.any(axis=0)
    rollback, _ = iv.familywise_reject(pv["rb"][0][None], s.alpha_rollback, s.multiplicity)
    passed = (
        (pv["fail"][1] <= s.alpha_go)
        & (pv["med"][0] <= s.alpha_go)
        & (pv["rb"][1] <= s.alpha_go)
        & np.all([~p | (g <= s.alpha_go) for p, g in zip(present, strata_good, strict=True)], axis=0)
        & ((t >= me.min_runs) | ((t - 1) / PER_DAY >= me.min_days))
    )
    return np.where(rollback[0], ROLLBACK, np.where(any_no_go, NO_GO, np.where(passed, GO, HOLD)))


# --------------------------------------------------------------- the old rules (for comparison only)


def old_verdicts(sim: Sim, cfg: rules.DecisionConfig) -> np.ndarray:
    """The pre-issue-12 rules, re-implemented for this comparison only: Wilson 95% straddle -> HOLD for
    fail_rate, point estimates for the median, the strata and the rollback trigger (min_n = 1)."""
    rl = {r.name: r for r in cfg.rules_for()}
    r_, t_ = sim.outcome.shape
    t = np.arange(1, t_ + 1)
    k_fail = np.cumsum(sim.outcome == 2, axis=1)
    p_fail = k_fail / t
    lo, hi = iv.wilson(k_fail, t, 0.05)
    thr = rl["fail_rate"].threshold
    fail_state = np.where((lo <= thr) != (hi <= thr), HOLD, np.where(p_fail <= thr, GO, NO_GO))
    med = np.empty((r_, t_))
    for j in range(t_):  # running median, numpy's linear interpolation like the old engine
        med[:, j] = np.median(sim.unknown_rate[:, : j + 1], axis=1)
    med_ok = med <= rl["unknown_rate_median"].threshold
    strata_bad = np.zeros((r_, t_), dtype=bool)
    for j in range(len(STRATA)):
        in_s = sim.stratum == j
        n_s = np.cumsum(in_s, axis=1)
        k_s = np.cumsum(in_s & (sim.outcome >= 1), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            strata_bad |= (n_s > 0) & (k_s / np.maximum(n_s, 1) > rl["warn_fail_rate_per_stratum"].threshold)
    rollback = p_fail > rl["rollback_fail_rate"].threshold
    enough = (t >= rl["min_evidence"].min_runs) | ((t - 1) / PER_DAY >= rl["min_evidence"].min_days)
    no_go = (fail_state == NO_GO) | ~med_ok | strata_bad
    go = (fail_state == GO) & med_ok & ~strata_bad & enough
    return np.where(rollback, ROLLBACK, np.where(no_go, NO_GO, np.where(go, GO, HOLD)))


# --------------------------------------------------------------------------------------------- summary


def summarize(v: np.ndarray, looks: np.ndarray) -> dict[str, float]:
    """Operating characteristics of verdicts v (R x T) seen at the given look indices (0-based)."""
    w = v[:, looks]
    run_no = looks + 1

    def first(code):
        hit = w == code
        any_ = hit.any(axis=1)
        idx = np.where(any_, hit.argmax(axis=1), -1)
        runs = run_no[idx[any_]]
        return any_.mean(), (float(np.median(runs)) if len(runs) else float("nan"))

    p_go, med_go = first(GO)
    p_rb, med_rb = first(ROLLBACK)
    stop = ((w == NO_GO) | (w == ROLLBACK)).any(axis=1).mean()
    return {"go": p_go, "median_go": med_go, "stop": stop, "rollback": p_rb, "median_rollback": med_rb}


def interleave(sim_new: Sim, sim_old: Sim, rng: np.random.Generator):
    """50/50 interleaving: which policy each of T runs belongs to, and each policy's run count so far."""
    r, t = sim_new.outcome.shape
    is_new = rng.random((r, t)) < 0.5
    return is_new, np.cumsum(is_new, axis=1), np.cumsum(~is_new, axis=1)


def at_counts(v_policy: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Verdict after the count-th run of a policy (HOLD before its first run), per overall look."""
    idx = np.clip(counts - 1, 0, v_policy.shape[1] - 1)
    return np.where(counts > 0, np.take_along_axis(v_policy, idx, axis=1), HOLD)


def engine_agreement(cfg, fixed_cfg, rng: np.random.Generator, checks: int) -> tuple[int, int]:
    """Whole-engine runs: rules.evaluate on a run table vs the vectorized verdicts, at several looks."""
    agree = total = 0
    t0 = pd.Timestamp("2026-03-01T00:00:00Z")
    for sc in SCENARIOS[:4] + SCENARIOS[5:]:
        sim = simulate(rng, checks, LOOKS, sc.fail, sc.warn_fail, sc.shares)
        for c in (cfg, fixed_cfg):
            v = new_verdicts(sim, c)
            for i in range(checks):
                for look in (5, 29, 60, 150, 299):
                    n = look + 1
                    df = pd.DataFrame(
                        {
                            "run_id": [f"r{j:04d}" for j in range(n)],
                            "timestamp": [t0 + pd.Timedelta(hours=24 * j / PER_DAY) for j in range(n)],
                            "policy_hash": "cand",
                            "outcome": np.array(["PASS", "WARN", "FAIL"])[sim.outcome[i, :n]],
                            "unknown_rate": sim.unknown_rate[i, :n],
                            "stratum": np.array(STRATA)[sim.stratum[i, :n]],
                            "overrides_count": pd.array([0] * n, dtype="Int64"),
                        }
                    )
                    got = rules.DECISION_NUMBERS[rules.evaluate(df, c).verdict]
                    agree += int(got == v[i, look])
                    total += 1
    return agree, total


def run(rollouts: int, seed: int, checks: int) -> tuple[str, float, tuple[int, int]]:
    cfg = rules.load_decision_config(CONFIG.read_bytes(), str(CONFIG))
    fixed_cfg = cfg.model_copy(update={"decision": cfg.decision.model_copy(update={"interval": "fixed"})})
    rng = np.random.default_rng(seed)
    every = np.arange(LOOKS)
    daily = np.arange(PER_DAY - 1, LOOKS, PER_DAY)
    rows = []
    started = time.perf_counter()
    for sc in SCENARIOS:
        sim = simulate(rng, rollouts, LOOKS, sc.fail, sc.warn_fail, sc.shares)
        if sc.interleaved_old_fail is None:
            engines = {
                "sequential": new_verdicts(sim, cfg),
                "fixed": new_verdicts(sim, fixed_cfg),
                "old rules": old_verdicts(sim, cfg),
            }
            flips = None
        else:
            old_sim = simulate(rng, rollouts, LOOKS, sc.interleaved_old_fail, 0.25, sc.shares)
            is_new, n_new, n_old = interleave(sim, old_sim, rng)
            # New engine: always the candidate (the most recently introduced hash), on its own runs.
            engines = {
                "sequential": at_counts(new_verdicts(sim, cfg), n_new),
                "fixed": at_counts(new_verdicts(sim, fixed_cfg), n_new),
            }
            # Old rules: the policy of the latest run, so the verdict follows whichever hash ran last.
            old_new, old_old = old_verdicts(sim, cfg), old_verdicts(old_sim, cfg)
            engines["old rules"] = np.where(is_new, at_counts(old_new, n_new), at_counts(old_old, n_old))
            flips = (is_new[:, 1:] != is_new[:, :-1]).sum(axis=1).mean()
        for engine, v in engines.items():
            for label, looks in (("every run", every), ("daily", daily)):
                rows.append(
                    {
                        "scenario": sc.name,
                        "must": sc.must,
                        "engine": engine,
                        "looks": label,
                        **summarize(v, looks),
                        "flips": flips if engine == "old rules" else 0.0,
                    }
                )
    agreement = engine_agreement(cfg, fixed_cfg, rng, checks)
    return table(rows), time.perf_counter() - started, agreement


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _num(x: float) -> str:
    return "–" if x != x else f"{x:.0f}"


def table(rows: list[dict]) -> str:
    head = (
        "| scenario | engine | looks | P(any GO) | median runs to GO | P(any NO_GO or ROLLBACK) | "
        "P(any ROLLBACK) | median runs to ROLLBACK |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['engine']} | {r['looks']} | {_pct(r['go'])} | {_num(r['median_go'])} | "
            f"{_pct(r['stop'])} | {_pct(r['rollback'])} | {_num(r['median_rollback'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rollouts", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--engine-checks", type=int, default=3, help="whole-engine rollouts per scenario")
    ap.add_argument("--write", action="store_true", help="write the table into docs/DECISIONS.md")
    args = ap.parse_args(argv)
    text, secs, (agree, total) = run(args.rollouts, args.seed, args.engine_checks)
    footer = (
        f"\n\n{args.rollouts} seeded rollouts per scenario (seed {args.seed}), {LOOKS} runs each, looked at "
        f"after every run and once a day ({PER_DAY} runs/day). Whole-engine check: rules.evaluate agreed with "
        f"the vectorized verdicts in {agree} of {total} looks. Runtime {secs:.0f} s."
    )
    print(text + footer)
    if args.write:
        doc = DOC.read_text()
        block = f"<!-- BENCH:START -->\n{text}{footer}\n<!-- BENCH:END -->"
        DOC.write_text(re.sub(r"<!-- BENCH:START -->.*<!-- BENCH:END -->", lambda _: block, doc, flags=re.S))
    return 0 if agree == total else 1


if __name__ == "__main__":
    sys.exit(main())
