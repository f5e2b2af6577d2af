"""The bundled sample is exactly what the seeded generator writes, and the generator is deterministic."""

from pathlib import Path

from gate_pipeline.synthetic import CorpusSpec, generate, write_sample
from gate_pipeline_tests.pipeline_helpers import SAMPLE


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_bundled_sample_matches_generator(tmp_path):
    counts = write_sample(tmp_path)
    assert _tree(tmp_path) == _tree(SAMPLE), "run `make sample` to regenerate the bundled sample"
    assert counts["runs"] == 72 and counts["bad_inputs"] == 8
    days = {p.name for p in SAMPLE.iterdir()}
    assert len(days) >= 10


def test_generator_is_seeded_and_order_independent(tmp_path):
    spec = CorpusSpec(runs=50, days=3, bad_fraction=0.2, seed=3)
    a, b = tmp_path / "a", tmp_path / "b"
    counts_a = generate(a, spec, order_seed=1)
    counts_b = generate(b, spec, order_seed=2)
    assert counts_a == counts_b
    assert _tree(a) == _tree(b)
    assert counts_a["runs"] == 50 and counts_a["bad_files"] > 0
