"""Durable message store: accepted messages, their parts and history, receipt correlation and
the ordered event log.

`sqlite_store.SqliteStore` is the one implementation: SQLite in WAL mode with a single writer
thread doing group commit, so nothing is reported "accepted" before its batch is committed.
`ids` makes the time-ordered message ids (UUIDv7), `schema` holds the tables and migrations.
"""
