import os

import pytest
from falcon import testing

from reference_layout import FIXTURE_DA, FIXTURE_RT, SHARED_DATA, write_reference_dir

REQUIRE_REAL_DATA = "ERCOT_FAST_REQUIRE_REAL_DATA"


@pytest.fixture(scope="session")
def real_data():
    """The shared real ERCOT data folder (reference_layout.SHARED_DATA). Without it
    the test is skipped, or fails when ERCOT_FAST_REQUIRE_REAL_DATA=1 (CI). Every
    test and fixture that reads it asks for this fixture, directly or through
    utc_dir / legacy_dir."""
    if not SHARED_DATA.is_dir():
        reason = (
            f"needs the real ERCOT data in {SHARED_DATA}, which is not a directory "
            "(ERCOT_FAST_SHARED_DATA, default ../shared/data/ercot beside the checkout)"
        )
        if os.environ.get(REQUIRE_REAL_DATA) == "1":
            pytest.fail(f"{reason}; {REQUIRE_REAL_DATA}=1 makes this a failure", pytrace=False)
        pytest.skip(reason)
    return SHARED_DATA


@pytest.fixture(scope="session")
def utc_dir(real_data, tmp_path_factory):
    """Reference layout, DST-correct UTC flavour, from the real CSVs."""
    return write_reference_dir(tmp_path_factory.mktemp("utc"), "utc")


@pytest.fixture(scope="session")
def legacy_dir(real_data, tmp_path_factory):
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


# --- tests/data's genuine cut: no ../shared needed ----------------------------------


@pytest.fixture(scope="session")
def fixture_utc_dir(tmp_path_factory):
    """Reference layout, UTC flavour, from tests/data's report ZIPs (conftest's utc_dir from the shared CSVs)."""
    return write_reference_dir(tmp_path_factory.mktemp("fixture_utc"), "utc", FIXTURE_DA, FIXTURE_RT)


@pytest.fixture(scope="session")
def fixture_legacy_dir(tmp_path_factory):
    """Reference layout as the older pipeline wrote it, from tests/data's report ZIPs."""
    return write_reference_dir(tmp_path_factory.mktemp("fixture_legacy"), "legacy", FIXTURE_DA, FIXTURE_RT)


@pytest.fixture(scope="session")
def fixture_store(fixture_utc_dir):
    from ercot_fast.store.load import load_store

    return load_store(fixture_utc_dir)


@pytest.fixture(scope="session")
def fixture_client(fixture_store):
    from ercot_fast.api.app import create_app

    return testing.TestClient(create_app(fixture_store, max_range_days=1000))
