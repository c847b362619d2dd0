import pytest

from nightbench.suites import catalog


@pytest.fixture
def clean_catalog(monkeypatch):
    """A copy of the catalog for one test: suites a test adds are gone after it."""
    monkeypatch.setattr(catalog, "CATALOG", catalog.CATALOG.copy())


@pytest.fixture
def toy_suite(monkeypatch):
    """Make the engine-test suite 'toy' known to the catalog for one test."""
    monkeypatch.setitem(catalog.CATALOG.entries, "toy", "tests.suites.toy_suite")
    from tests.suites.toy_suite import SUITE

    return SUITE
