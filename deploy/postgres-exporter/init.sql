-- compose: run once in each instance's database at its first start (the local stack does
-- the same in deploy/local/stack.py). Query time per database comes from it.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
