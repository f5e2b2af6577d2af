"""gate_pipeline: evidence-based go/no-go decisions for CI gate rollouts, as Dagster assets."""

__version__ = "0.1.0"
