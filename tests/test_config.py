"""Settings: flag, then environment, then default, with errors that say what to change."""
import argparse

import pytest

from ercot_fast import config, datasets


def serve_args(*argv):
    parser = argparse.ArgumentParser()
    config.add_serve_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_then_environment_then_defaults():
    settings = config.serve_config(serve_args("--max-series", "5"), environ={"MAX_SERIES": "7", "STALE_AFTER": "2h"})
    assert settings.max_series == 5  # the flag wins
    assert settings.stale_after == {name: 7200 for name in datasets.DATASETS}  # from the environment
    assert settings.min_reload_fraction == config.DEFAULT_MIN_RELOAD_FRACTION and settings.allow_shrink is False
    assert config.serve_config(serve_args(), environ={"ALLOW_SHRINK": "1"}).allow_shrink is True


def test_stale_after_ages():
    assert config.parse_duration("90m") == 5400 and config.parse_duration("2d") == 172800
    assert config.parse_stale_after("day_ahead=36h, real_time=2h") == {"day_ahead": 129600, "real_time": 7200}
    for bad in ("36", "h", "-2h", "0m", "2w"):
        with pytest.raises(ValueError, match="not an age like 90m"):
            config.parse_duration(bad)
    with pytest.raises(ValueError, match="'nodal' is not a data set: use day_ahead"):
        config.parse_stale_after("nodal=2h")


def test_config_knows_the_data_sets_without_importing_them():
    assert config._DATASET_NAMES == datasets.DATASETS  # config imports nothing of ours: kept equal here


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"MAX_SERIES": "lots"}, "MAX_SERIES='lots' is not a valid int"),
        ({"STALE_AFTER": "soon"}, "STALE_AFTER='soon' is not a valid value"),
        ({"ALLOW_SHRINK": "maybe"}, "ALLOW_SHRINK is 1 or 0"),
        ({"MIN_RELOAD_FRACTION": "1.5"}, "--min-reload-fraction is a share from 0 to 1"),
        ({"MAX_SERIES": "0"}, "--max-series must be at least 1"),
    ],
)
def test_bad_settings_say_what_to_change(environ, message):
    with pytest.raises(SystemExit) as stopped:
        config.serve_config(serve_args(), environ=environ)
    assert message in str(stopped.value)
