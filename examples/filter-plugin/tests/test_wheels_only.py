"""Testing a filter plugin without a network: mirror.testing builds pages and runs the factory."""

import pytest
from mirror_filter_wheels_only import factory

from mirror.errors import ConfigError
from mirror.testing import build, explain, kept, page


def test_keeps_wheels_and_drops_sdists() -> None:
    plugin = build(factory, name="wheels-only")
    demo = page("demo", "demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz")
    assert kept(plugin, demo) == ["demo-1.0-py3-none-any.whl"]
    dropped = explain(plugin, demo)["demo-1.0.tar.gz"]
    assert dropped is not None and (dropped.plugin, dropped.reason) == ("wheels-only", "not a wheel")


def test_sdists_kept_for_listed_projects() -> None:
    plugin = build(factory, {"sdists-for": ["Demo"]})
    assert kept(plugin, page("demo", "demo-1.0.tar.gz")) == ["demo-1.0.tar.gz"]


def test_bad_option_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"\[filters.wheels-only\] sdists-for must be a list of strings"):
        build(factory, {"sdists-for": "demo"}, name="wheels-only")
