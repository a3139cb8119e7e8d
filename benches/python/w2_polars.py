"""W2/W3 with polars: JSON Lines logs -> count error lines and sum their latency.
With a third argument N, stop after the first N errors (W3)."""
import sys

import polars as pl

src = sys.argv[1]
errors = pl.scan_ndjson(src).filter(pl.col("level") == "error")
if len(sys.argv) > 2:
    errors = errors.head(int(sys.argv[2]))
out = errors.select(pl.len().alias("errors"), pl.col("latency_ms").sum()).collect()
print(f"errors={out['errors'][0]} latency_ms={out['latency_ms'][0]}")
