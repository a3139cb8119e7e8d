"""W1 with polars (lazy, streaming): orders CSV -> active -> id,email,amount*1.2 -> CSV."""
import sys

import polars as pl

src, dst = sys.argv[1], sys.argv[2]
(
    pl.scan_csv(src)
    .filter(pl.col("status") == "active")
    .select(pl.col("id"), pl.col("email"), (pl.col("amount") * 1.2).alias("amount"))
    .sink_csv(dst, float_precision=2)
)
