"""What-if replay timings (issue 17: under 10% of a cold build at 100k runs): `gate-pipeline whatif` on a built
outputs folder, for a candidate whitelist (one more entry) and a candidate threshold (fail_rate), each as its own
process with the artifact root pointed at a folder that does not exist (it reads none).

    make bench BENCH_ARGS="--sizes 100000 --repeat 1 --whatif"      # after the cold build, against it
    .venv/bin/python bench/whatif.py --out <built out> --config <its config> [--cold-seconds S]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
WHITELIST = "unknown_whitelist.json"
DECISION = "policy_constants.yaml"


@dataclass
class Timing:
    name: str
    wall_s: float
    cpu_s: float  # user + system of the child
    days_evaluated: int
    ok: bool


def candidates(config: Path, work: Path) -> dict[str, Path]:
    """Two candidate folders: the whitelist with one more entry (a reason the synthetic corpora leave
    non-whitelisted), and fail_rate's threshold raised."""
    whitelist = orjson.loads((config / WHITELIST).read_bytes())
    whitelist["entries"].append(
        {"reason": "schema_drift", "match": "exact", "class": "schema", "owner": "bench", "note": "what-if"}
    )
    folders = {"whitelist": work / "cand-whitelist", "threshold": work / "cand-threshold"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    (folders["whitelist"] / WHITELIST).write_bytes(orjson.dumps(whitelist, option=orjson.OPT_INDENT_2))
    constants = (config / DECISION).read_text()
    raised = constants.replace("threshold: 0.10", "threshold: 0.30", 1)
    if raised == constants:
        raise SystemExit(f"{config / DECISION}: no 'threshold: 0.10' to raise")
    (folders["threshold"] / DECISION).write_text(raised)
    return folders


def run_whatif(out: Path, config: Path, candidate: Path, name: str, home: Path) -> Timing:
    cmd = [str(VENV_BIN / "gate-pipeline"), "whatif", "--config", str(candidate), "--name", name]
    cmd += ["--out", str(out), "--current-config", str(config), "--artifacts", str(out / "no-artifacts-here")]
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
        return Timing(name, wall, cpu, -1, False)
    summary = orjson.loads((out / "whatif" / name / "summary.json").read_bytes())
    return Timing(name, wall, cpu, summary["candidate"]["timeline_days_evaluated"], True)


def bench_whatif(out: Path, config: Path, home: Path, cold_s: float | None, repeat: int = 1) -> list[str]:
    """Time both candidates (median of ``repeat``) and return the report lines."""
    folders = candidates(config, out.parent / "whatif-candidates")
    lines = []
    for label, folder in folders.items():
        runs = [run_whatif(out, config, folder, f"bench-{label}", home) for _ in range(repeat)]
        runs.sort(key=lambda t: t.wall_s)
        t = runs[len(runs) // 2]
        ratio = f" = {t.wall_s / cold_s:.1%} of the cold build's {cold_s:.1f}s" if cold_s else ""
        lines.append(
            f"What-if replay, candidate {label}: wall {t.wall_s:.1f}s (CPU {t.cpu_s:.1f}s){ratio}; "
            f"days of the candidate's timeline evaluated: {t.days_evaluated}; artifact root absent"
            + ("" if t.ok else " — FAILED")
            + (f"; trials {[round(r.wall_s, 1) for r in runs]}" if repeat > 1 else "")
        )
        print("  " + lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="a built outputs folder (with its _data)")
    p.add_argument("--config", type=Path, required=True, help="the config it was built with")
    p.add_argument(
        "--cold-seconds", type=float, default=None, help="the cold build's wall time, for the ratio"
    )
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args(argv)
    # Byte-compiled as an install leaves it (see run_bench.compile_package).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "gate_pipeline")], check=True)
    home = args.out.parent / "whatif-dagster-home"
    home.mkdir(parents=True, exist_ok=True)
    bench_whatif(args.out.resolve(), args.config.resolve(), home, args.cold_seconds, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
