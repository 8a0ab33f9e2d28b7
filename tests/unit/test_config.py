import tomllib
from pathlib import Path

import pytest

from mirror import _config as config
from mirror.errors import ConfigError

STARTER = Path(__file__).parents[2] / "mirror" / "starter.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mirror.toml"
    path.write_text(text)
    return path


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, '[mirror]\ndirectory = "m"\nupstream = "http://127.0.0.1:1/simple"\n'))
    assert cfg.directory == (tmp_path / "m").resolve()
    assert cfg.upstream == "http://127.0.0.1:1/simple/"
    assert cfg.workers == 16 and cfg.verify_tls and cfg.require_hashes
    assert cfg.filters.enabled == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[mirror]\nupstream = "http://x/"\n', "directory is required"),
        ('[mirror]\ndirectory = "m"\nworkerz = 3\n', "unknown key [mirror] 'workerz'"),
        ('[mirror]\ndirectory = "m"\nworkers = "8"\n', "workers must be an integer"),
        ('[mirror]\ndirectory = "m"\nworkers = true\n', "workers must be an integer"),
        ('[mirror]\ndirectory = "m"\nworkers = 0\n', "workers must be between"),
        ('[mirror]\ndirectory = "m"\nupstream = "ftp://x/"\n', "upstream must be an http"),
        ('[mirrors]\ndirectory = "m"\n', "unknown key 'mirrors'"),
        ("[mirror\n", "invalid TOML"),
        ('[mirror]\ndirectory = "m"\n[filters]\nenabled = "allowlist"\n', "enabled must be a list"),
        (
            '[mirror]\ndirectory = "m"\n[filters]\nenabled = []\n[filters.allowlist]\nprojects = []\n',
            "not in [filters] enabled",
        ),
    ],
)
def test_bad_configs_name_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.toml")


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert config.locate("x.toml", {}) == Path("x.toml")
    assert config.locate(None, {"MIRROR_CONFIG": "env.toml"}) == Path("env.toml")
    (tmp_path / "mirror.toml").write_text("")
    assert config.locate(None, {}) == Path("mirror.toml")


def test_upstream_is_required_only_when_asked(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, '[mirror]\ndirectory = "m"\n'))
    with pytest.raises(ConfigError, match="upstream is required"):
        cfg.require_upstream()


def test_starter_config_is_valid_and_documents_every_key() -> None:
    text = STARTER.read_text()
    cfg = config.parse(tomllib.loads(text), STARTER)
    assert cfg.upstream == "https://pypi.org/simple/"
    for key in config.MIRROR_KEYS:
        assert f"{key.name} =" in text, f"starter config does not document {key.name}"
    # Every commented default parses and equals the declared default.
    for line in text.splitlines():
        if line.startswith("# ") and " = " in line and line[2:].split(" = ")[0] in {k.name for k in config.MIRROR_KEYS}:
            name, value = line[2:].split(" = ", 1)
            declared = next(k for k in config.MIRROR_KEYS if k.name == name).default
            assert tomllib.loads(f"v = {value}")["v"] == declared, name
