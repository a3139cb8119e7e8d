"""W2/W3 with DuckDB: JSON Lines logs -> count error lines and sum their latency.
With a third argument N, stop after the first N errors (W3)."""
import sys

import duckdb

src = sys.argv[1]
limit = f"LIMIT {int(sys.argv[2])}" if len(sys.argv) > 2 else ""
rows = duckdb.sql(
    f"""SELECT count(*), sum(latency_ms) FROM (
          SELECT latency_ms FROM read_json('{src}', format = 'newline_delimited')
          WHERE level = 'error' {limit})"""
).fetchall()
print(f"errors={rows[0][0]} latency_ms={rows[0][1]}")
