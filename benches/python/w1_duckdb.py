"""W1 with DuckDB: orders CSV -> active -> id,email,amount*1.2 -> CSV."""
import sys

import duckdb

src, dst = sys.argv[1], sys.argv[2]
duckdb.sql(
    f"""COPY (SELECT id, email, round(amount * 1.2, 2) AS amount
              FROM read_csv('{src}') WHERE status = 'active')
        TO '{dst}' (HEADER)"""
)
