import re
import tomllib
from pathlib import Path

import pytest

from mirror import _config as config
from mirror.cli.common import prepare_directory
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
        # Reproductions from issue 12 (each was a traceback, or was accepted):
        ('[mirror]\ndirectory = "m\\u0000x"\n', "directory must not contain control characters"),
        ('[mirror]\ndirectory = "m"\nmetrics-file = "/"\n', "metrics-file must name a file"),
        ('[mirror]\ndirectory = "m"\nmetrics-file = "m/web/x.prom"\n', "metrics-file must not be under"),
        ('[mirror]\ndirectory = "/"\n', "directory must not be a file system root"),
        ('[mirror]\ndirectory = "~no-such-user/m"\n', "directory starts with ~ but names no known user"),
        ('[mirror]\ndirectory = "/srv/.."\n', "directory must not be a file system root"),
        ('[mirror]\ndirectory = "m"\nupstream = "http://127.0.0.1:99999/simple/"\n', "upstream is not a valid URL"),
        ('[mirror]\ndirectory = "m"\nupstream = "http://127.0.0.1:0/simple/"\n', "upstream has port 0"),
        ('[mirror]\ndirectory = "m"\nupstream = "http://[::1/simple/"\n', "upstream is not a valid URL"),
        ('[mirror]\ndirectory = "m"\nupstream = "http:///simple/"\n', "upstream must be an http"),
        ('[mirror]\ndirectory = "m"\nupstream = "http://x/ simple/"\n', "upstream must be a URL without spaces"),
        ('[mirror]\ndirectory = "m"\ncontact = "a\\r\\nX-Evil: 1"\n', "contact must be printable ASCII"),
        ('[mirror]\ndirectory = "m"\nca-bundle = "x\\u0000"\n', "ca-bundle must not contain control characters"),
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


@pytest.mark.parametrize("keys", [config.STORAGE_KEYS, config.SERVE_KEYS], ids=["storage", "serve"])
def test_starter_config_documents_the_storage_and_serve_tables(keys: tuple[config.Key, ...]) -> None:
    text = STARTER.read_text()
    for key in keys:
        line = next((x for x in text.splitlines() if x.startswith(f"# {key.name} = ")), None)
        assert line is not None, f"starter config does not document {key.name}"
        value = line[2:].split(" = ", 1)[1].split("#")[0].strip()
        assert tomllib.loads(f"v = {value}")["v"] == key.default, key.name


def test_storage_and_serve_default_to_the_filesystem_and_localhost(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, '[mirror]\ndirectory = "m"\n'))
    assert cfg.storage == config.StorageConfig()
    assert cfg.serve == config.ServeConfig()


def test_s3_storage_table_is_read(tmp_path: Path) -> None:
    text = (
        '[mirror]\ndirectory = "m"\n[storage]\nbackend = "s3"\nbucket = "pypi"\nprefix = "mirror/"\n'
        'endpoint-url = "http://127.0.0.1:8333"\n'
    )
    cfg = config.load(write(tmp_path, text))
    assert cfg.storage == config.StorageConfig("s3", "pypi", "mirror", "http://127.0.0.1:8333", "us-east-1")


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ('[storage]\nbackend = "s3"\n', "bucket is required"),
        ('[storage]\nbackend = "ftp"\n', "backend must be one of"),
        ('[storage]\nbackend = "s3"\nbucket = "a b"\n', "must be a bucket name"),
        ('[storage]\nbackend = "s3"\nbucket = "b1b"\nprefix = "../x"\n', "relative key prefix"),
        ('[storage]\nbucket = "pypi"\n', "only applies to backend = 's3'"),
        ('[storage]\nbackend = "s3"\nbucket = "b1b"\nendpoint-url = "ftp://x"\n', "must be an http"),
        ('[storage]\naccess-key = "x"\n', "unknown key [storage] 'access-key'"),
        ("[serve]\nport = 70000\n", "port must be between"),
        ("[serve]\nread-auth = true\n", "read-auth needs users-file"),
        ('[serve]\nusers-file = "dir/"\n', "must name a file"),
    ],
)
def test_bad_storage_and_serve_tables_are_one_line_errors(tmp_path: Path, table: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(complaint)):
        config.load(write(tmp_path, '[mirror]\ndirectory = "m"\n' + table))


@pytest.mark.parametrize(
    "upstream",
    ["http://user:hunter2@127.0.0.1/simple/", "https://:hunter2@example.org/simple/", "http://hunter2@h/"],
)
def test_credentials_in_the_upstream_are_refused_and_never_shown(tmp_path: Path, upstream: str) -> None:
    path = write(tmp_path, f'[mirror]\ndirectory = "m"\nupstream = "{upstream}"\n')
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert "must not carry credentials" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_credential_of_the_wrong_type_is_not_shown_either(tmp_path: Path) -> None:
    path = write(tmp_path, '[mirror]\ndirectory = "m"\nupstream = ["http://u:hunter2@h/"]\n')
    with pytest.raises(ConfigError, match="upstream must be a string") as info:
        config.load(path)
    assert "hunter2" not in str(info.value)


def test_metrics_file_outside_the_mirror_is_fine(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, '[mirror]\ndirectory = "m"\nmetrics-file = "textfile/mirror.prom"\n'))
    assert cfg.metrics_path == tmp_path / "textfile" / "mirror.prom"


def test_metrics_file_naming_an_existing_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "textfile").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        config.load(write(tmp_path, '[mirror]\ndirectory = "m"\nmetrics-file = "textfile"\n'))


# -- which existing directories may become a mirror (mirror.cli.common.prepare_directory) ---------


def prepared(tmp_path: Path, directory: str) -> config.Config:
    cfg = config.load(write(tmp_path, f'[mirror]\ndirectory = "{directory}"\n'))
    prepare_directory(cfg)
    return cfg


def test_a_new_or_empty_directory_becomes_a_mirror(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for name in ("new", "empty"):
        cfg = prepared(tmp_path, name)
        assert cfg.web.is_dir() and cfg.state_dir.is_dir()


def test_a_directory_holding_only_the_config_diffs_and_lost_found_becomes_a_mirror(tmp_path: Path) -> None:
    (tmp_path / "diffs").mkdir()
    (tmp_path / "lost+found").mkdir()
    cfg = prepared(tmp_path, ".")
    assert cfg.web.is_dir() and (tmp_path / "web").is_dir()


def test_an_existing_bandersnatch_tree_is_a_mirror(tmp_path: Path) -> None:
    tree = tmp_path / "bandersnatch"
    (tree / "web" / "simple").mkdir(parents=True)
    (tree / "web" / "simple" / "index.html").write_text("<html></html>")
    (tree / "generation").write_text("5")
    (tree / "status").write_text("1234")
    (tree / "todo").write_text("")
    cfg = prepared(tmp_path, "bandersnatch")
    assert cfg.state_dir.is_dir()


@pytest.mark.parametrize("contents", [["notes.txt"], [".bashrc", "Documents"], ["etc", "usr", "var", "home", "srv"]])
def test_a_non_empty_directory_that_is_not_a_mirror_is_refused(tmp_path: Path, contents: list[str]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for name in contents:
        (home / name).mkdir()
    with pytest.raises(ConfigError) as info:
        prepared(tmp_path, "home")
    message = str(info.value)
    assert "is not empty and holds no mirror" in message and "mirror.toml" in message
    assert contents[0] in message or sorted(contents)[0] in message
    assert sorted(p.name for p in home.iterdir()) == sorted(contents)  # nothing created in it
