"""The PySpark example (examples/spark_token_totals.py) computes the per-model token totals that
pandas and DuckDB compute, over an exported dataset. Runs in `make spark`, in its own venv
(.venv-spark: pyspark, Java 17), where NR_REQUIRE_SPARK makes a missing pyspark a failure."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

import notebook_recorder as nr

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "llama-stack"

if importlib.util.find_spec("pyspark") is None:
    if os.environ.get("NR_REQUIRE_SPARK"):
        raise RuntimeError(
            "NR_REQUIRE_SPARK is set but pyspark is not installed (make .venv-spark/bin/.installed-spark)"
        )
    pytest.skip("pyspark is not installed here: `make spark` runs this", allow_module_level=True)


def _example() -> object:
    spec = importlib.util.spec_from_file_location("spark_token_totals", ROOT / "examples" / "spark_token_totals.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_spark_duckdb_and_pandas_agree_on_token_totals(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    nr.export(FIXTURES, to=dataset, progress=False)
    frame = nr.load_recordings(FIXTURES)
    by_pandas = {str(k): int(v) for k, v in frame.groupby("model", observed=True)["total_tokens"].sum().items()}
    con = nr.connect(dataset)
    by_duckdb = {
        m: int(t or 0)
        for m, t in con.execute(
            "select model, sum(total_tokens) from calls where model is not null group by 1"
        ).fetchall()
    }
    example = _example()
    spark = example.local_session("notebook-recorder-test")  # type: ignore[attr-defined]
    try:
        by_spark = example.token_totals(spark, str(dataset))  # type: ignore[attr-defined]
        (rows,) = spark.read.parquet(str(dataset / "messages")).groupBy().count().collect()[0]
    finally:
        spark.stop()
    assert by_spark == by_duckdb == by_pandas
    assert sum(by_pandas.values()) > 0
    assert rows == len(nr.messages(FIXTURES))
