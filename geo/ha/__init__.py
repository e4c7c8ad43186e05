"""Automatic failover with pg_auto_failover (Debian `postgresql-15-auto-failover`): a monitor and
two PostgreSQL nodes with synchronous replication (docs/decisions.md, docs/operations.md)."""
