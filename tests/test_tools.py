"""The benchmark scripts under tools/ are not a package; their argument handling is tested by loading them."""
import importlib.util
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_budget_overrides_reach_only_their_model():
    bench = load_tool("bench_budget")
    overrides = ["data.max_users=2000", "genrec_every_position:objective.distill_weight=1", "sasrec_id:sasrec.dropout=0.1"]
    assert bench.overrides_for(overrides, "genrec_every_position") == ["data.max_users=2000", "objective.distill_weight=1"]
    assert bench.overrides_for(overrides, "sasrec_id") == ["data.max_users=2000", "sasrec.dropout=0.1"]
    assert bench.overrides_for(overrides, "genrec_window") == ["data.max_users=2000"]
    # a value may contain a colon; only a known model name before it makes the override model-specific
    assert bench.overrides_for(["output_dir=C:/runs"], "sasrec_id") == ["output_dir=C:/runs"]
    with pytest.raises(SystemExit, match="unknown model 'tiger'"):
        bench.overrides_for(["tiger:model.d_model=128"], "sasrec_id")
