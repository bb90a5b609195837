"""Per-model token totals with PySpark, over a dataset written by ``notebook-recorder export``.

    notebook-recorder export recordings/ --to dataset/
    python examples/spark_token_totals.py dataset/          # Spark in local mode, on this machine

On a cluster, put the dataset where the executors can read it (``s3a://bucket/dataset/``,
``gs://...``, ``abfss://...``, HDFS) and pass that path with ``--master`` left to ``spark-submit``:
the four datasets are plain Parquet partitioned by ``day=YYYY-MM-DD`` directories, so Spark
splits the work by file and prunes days from a ``where day >= ...`` filter.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def local_session(app: str = "notebook-recorder") -> Any:
    """A Spark session in local mode that listens on loopback only, with no web UI."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the JVM binds loopback, not the host's address
    return (
        SparkSession.builder.appName(app)
        .master("local[2]")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


def token_totals(spark: Any, dataset: str) -> dict[str, int]:
    """``{model: sum(total_tokens)}`` over the ``calls`` dataset under ``dataset`` (any path Spark reads)."""
    from pyspark.sql import functions as F

    calls = spark.read.parquet(f"{dataset.rstrip('/')}/calls")  # the day=... directories become a `day` column
    rows = calls.where(F.col("model").isNotNull()).groupBy("model").agg(F.sum("total_tokens").alias("tokens")).collect()
    return {row["model"]: int(row["tokens"] or 0) for row in rows}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: spark_token_totals.py DATASET", file=sys.stderr)
        return 2
    spark = local_session()
    try:
        for model, tokens in sorted(token_totals(spark, argv[0]).items(), key=lambda kv: -kv[1]):
            print(f"{tokens:>12,}  {model}")
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
