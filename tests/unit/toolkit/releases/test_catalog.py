"""The release catalog: the shipped one holds the three releases of the 2012 story; mistakes name file
and line."""

from pathlib import Path

import pytest

from toolkit.errors import ConfigError, ReleaseError
from toolkit.releases.catalog import load_catalog
from toolkit.settings import Settings

S = Settings()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "releases.yaml"
    path.write_text(text)
    return path


def test_shipped_catalog_has_the_three_releases_and_the_reused_flag():
    catalog = load_catalog(S.catalog_path, S.router_source)
    assert catalog.baseline == "7.1.0"
    assert catalog.versions == ["7.1.0", "8.0.0", "8.0.1"]
    assert catalog.get("7.1.0").strategies == ("sor", "power_peg")
    assert catalog.get("7.1.0").flags == {"flag_7": "power_peg"}
    assert catalog.get("8.0.0").strategies == ("sor", "rlp")
    assert catalog.get("8.0.0").flags == {"flag_7": "rlp"}
    assert catalog.get("8.0.1").flags == {"rlp_enable": "rlp"}
    assert catalog.get("8.0.1").retired == ("flag_7",)


def test_unknown_release_names_the_known_ones():
    catalog = load_catalog(S.catalog_path, S.router_source)
    with pytest.raises(
        ReleaseError, match=r"unknown release '9.9.9' \(known: 7.1.0, 8.0.0, 8.0.1\)"
    ):
        catalog.get("9.9.9")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "baseline: '1.0.0'\nreleases:\n  '1.0.0':\n    strategies: [sor]\n    colour: red\n",
            5,
            "unknown key 'colour'",
        ),
        (
            "baseline: '1.0.0'\nreleases:\n  '1.0.0':\n    strategies: [sor, warp]\n",
            4,
            "no strategy module for 'warp'",
        ),
        (
            "baseline: '1.0.0'\nreleases:\n  '1.0.0':\n    strategies: [sor]\n    flags:\n      flag_7: rlp\n",
            6,
            "does not contain",
        ),
        (
            "baseline: '2.0.0'\nreleases:\n  '1.0.0':\n    strategies: [sor]\n",
            1,
            "baseline '2.0.0'",
        ),
        ("baseline: '1.0.0'\nreleases:\n  '1.0':\n    strategies: [sor]\n", 3, "MAJOR.MINOR.PATCH"),
        (
            "baseline: '1.0.0'\nreleases:\n  '1.0.0':\n    strategies: [sor]\n  '1.0.0':\n    strategies: [sor]\n",
            5,
            "duplicate key",
        ),
        ("baseline: '1.0.0'\nreleases: [\n", 3, "invalid YAML"),
    ],
)
def test_a_mistake_names_the_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_catalog(path, S.router_source)
    assert info.value.path == str(path)
    assert info.value.line == line
    assert message in str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_missing_catalog_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_catalog(tmp_path / "nope.yaml", S.router_source)
