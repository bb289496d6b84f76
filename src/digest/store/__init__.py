"""Persistence with SQLAlchemy 2 Core: feeds, items, issues, deliveries, subscribers.

SQLite (WAL) by default; PostgreSQL through the same ``[storage] url``. ``open_store`` creates or
upgrades the schema; the modules beside this one hold the queries, one per table group, as plain
functions taking a ``Connection``.
"""

from digest.store.db import Store, open_store

__all__ = ["Store", "open_store"]
