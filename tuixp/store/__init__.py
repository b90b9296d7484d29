"""The tuixp store: DuckDB of record, per-process journals, trial ids, persisted objects.

Imports neither textual nor dask: any tool can read a store through this package.
"""

from tuixp.store.connection import resolve_store_path
from tuixp.store.schema import PUBLIC_VIEWS, SCHEMA_VERSION
from tuixp.store.store import Store, get_store

__all__ = ["Store", "get_store", "resolve_store_path", "PUBLIC_VIEWS", "SCHEMA_VERSION"]
