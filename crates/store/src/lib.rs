//! Persistence: one Store API over SQLite (default) and PostgreSQL.
