import pytest
from falcon import testing

from reference_layout import SHARED_DATA, write_reference_dir


def pytest_configure(config):
    if not SHARED_DATA.is_dir():
        raise pytest.UsageError(f"the real ERCOT data is missing: expected {SHARED_DATA} (../shared beside the checkout)")


@pytest.fixture(scope="session")
def utc_dir(tmp_path_factory):
    """Reference layout, DST-correct UTC flavour, from the real CSVs."""
    return write_reference_dir(tmp_path_factory.mktemp("utc"), "utc")


@pytest.fixture(scope="session")
def legacy_dir(tmp_path_factory):
    """Reference layout as the older pipeline wrote it (naive Central time)."""
    return write_reference_dir(tmp_path_factory.mktemp("legacy"), "legacy")


@pytest.fixture(scope="session")
def utc_store(utc_dir):
    from ercot_fast.store.load import load_store

    return load_store(utc_dir)


@pytest.fixture(scope="session")
def client(utc_store):
    from ercot_fast.api.app import create_app

    return testing.TestClient(create_app(utc_store, max_range_days=1000))
