"""The stores' layers: one shared query layer (``SqlStore``), and per backend only the
methods that truly differ (``BACKEND_METHODS``, documented in ``libv4e/csms/_sql.py``), so
SQLite and PostgreSQL cannot grow the same query twice again; no mixin towers."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest

from libv4e.csms import _pgschema, _pgstore, _sql, _sqlite, _sqlschema, _store
from libv4e.csms._pgstore import PostgresStore
from libv4e.csms._sql import BACKEND_METHODS, SqlStore
from libv4e.csms._sqlite import SqliteStore
from libv4e.csms._store import Store

BACKENDS = [SqliteStore, PostgresStore]
STORE_MODULES = [_store, _sql, _sqlschema, _sqlite, _pgstore, _pgschema]


def own_methods(cls: type) -> set[str]:
    """The callables (and properties) ``cls`` defines itself, aliases included."""
    return {
        name
        for name, value in vars(cls).items()
        if callable(value) or isinstance(value, staticmethod | classmethod | property)
    }


def protocol_methods(proto: type) -> set[str]:
    return {
        name
        for klass in proto.__mro__
        if getattr(klass, "_is_protocol", False) and klass is not typing.Protocol
        for name, value in vars(klass).items()
        if callable(value) and not name.startswith("_")
    }


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda c: c.__name__)
def test_a_backend_defines_only_its_allowed_methods(backend):
    extra = own_methods(backend) - BACKEND_METHODS[backend.__name__]
    assert not extra, (
        f"{backend.__name__} defines {sorted(extra)} outside the shared layer: write the "
        "query once in SqlStore (libv4e/csms/_sql.py), or, if only this database can do "
        "it, add it to BACKEND_METHODS with the reason"
    )
    assert backend.__bases__ == (SqlStore,)


def test_the_allow_lists_name_only_methods_that_exist():
    for backend in BACKENDS:
        stale = BACKEND_METHODS[backend.__name__] - own_methods(backend)
        assert not stale, f"BACKEND_METHODS[{backend.__name__!r}] lists {sorted(stale)}"


def test_every_store_method_is_shared_or_backend_specific_on_both():
    shared = {name for name in dir(SqlStore) if callable(getattr(SqlStore, name))}
    for name in sorted(protocol_methods(Store)):
        if name in shared and not name.startswith("_"):
            continue
        for backend in BACKENDS:
            assert name in BACKEND_METHODS[backend.__name__], (name, backend.__name__)


def test_the_shared_layer_does_not_branch_on_the_database():
    source = Path(inspect.getfile(SqlStore)).read_text()
    assert "dialect.name" not in source, "say the difference in the Dialect, not in an if"


def project_bases(cls: type) -> list[type]:
    """The libv4e classes ``cls`` inherits from, directly or not."""
    return [k for k in cls.__mro__[1:] if k.__module__.startswith("libv4e.")]


def test_no_store_class_has_more_than_two_project_base_classes():
    """Interfaces (``typing.Protocol`` classes) are exempt: ``Store`` is the union of its
    role protocols and holds no implementation."""
    checked = 0
    for module in STORE_MODULES:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or getattr(cls, "_is_protocol", False):
                continue
            checked += 1
            bases = project_bases(cls)
            assert len(bases) <= 2, f"{cls.__qualname__} inherits {bases}: compose instead"
    assert checked >= 6


def test_the_tables_are_declared_once_for_both_databases():
    for table in _sqlschema.TABLES:
        for dialect in (_sqlschema.SQLITE, _sqlschema.POSTGRESQL):
            (create,) = dialect.create(table)
            assert create.startswith(f"CREATE TABLE IF NOT EXISTS {table.name} (")
    assert "CREATE TABLE" not in _pgschema.CLUSTER_SCHEMA.replace(
        "CREATE TABLE IF NOT EXISTS nodes", ""
    ).replace("CREATE TABLE IF NOT EXISTS presence", "").replace(
        "CREATE TABLE IF NOT EXISTS mailbox", ""
    ), "only the cluster's own tables are PostgreSQL's alone"
