import pytest
from packaging.utils import NormalizedName

from mirror.core import layout
from mirror.errors import UnsafeName

SHA = "ab" * 32
P = NormalizedName("demo")


def test_pypi_url_keeps_the_packages_path() -> None:
    url = "https://files.pythonhosted.org/packages/aa/bb/cc/demo-1.0-py3-none-any.whl"
    assert layout.file_path(url, "demo-1.0-py3-none-any.whl", SHA, P) == "packages/aa/bb/cc/demo-1.0-py3-none-any.whl"


def test_percent_encoded_segments_are_decoded() -> None:
    url = "https://h/packages/aa/bb/cc/demo-1.0%2Blocal.tar.gz"
    assert layout.file_path(url, "demo-1.0+local.tar.gz", SHA, P).endswith("/demo-1.0+local.tar.gz")


def test_url_without_packages_path_is_content_addressed() -> None:
    path = layout.file_path("http://h/files/demo-1.0.tar.gz", "demo-1.0.tar.gz", SHA, P)
    assert path == f"packages/ab/ab/{SHA[4:]}/demo-1.0.tar.gz"


def test_last_segment_must_be_the_filename_else_content_addressed() -> None:
    path = layout.file_path("http://h/packages/aa/bb/other.whl", "demo-1.0.tar.gz", SHA, P)
    assert path.startswith("packages/ab/ab/")


def test_unhashed_file_is_keyed_by_project() -> None:
    assert layout.file_path("http://h/f/demo-1.0.tar.gz", "demo-1.0.tar.gz", None, P) == (
        "packages/unhashed/demo/demo-1.0.tar.gz"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://h/packages/../../etc/passwd",
        "http://h/packages/aa/%2e%2e/x.whl",
        "http://h/packages/aa/..%2fx/x.whl",
        "http://h/packages/aa/%5cx/x.whl",
        "http://h/packages/aa/x%00/x.whl",
        "http://h/packages//x.whl",
        "http://h/packages/.hidden/x.whl",
    ],
)
def test_escaping_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeName):
        layout.file_path(url, "x.whl", SHA, P)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "x\x00", ".hidden", "c:evil", "a" * 300])
def test_unsafe_filenames_are_refused(name: str) -> None:
    with pytest.raises(UnsafeName):
        layout.safe_filename(name)


def test_project_names_are_normalized_and_checked() -> None:
    assert layout.project_name("Foo_Bar") == "foo-bar"
    with pytest.raises(UnsafeName):
        layout.project_name("../etc")


def test_relative_link_quotes_and_climbs() -> None:
    assert (
        layout.relative_link("simple/demo", "packages/aa/demo-1.0+x.tar.gz") == "../../packages/aa/demo-1.0%2Bx.tar.gz"
    )


def test_temp_names_are_hidden_and_recognised() -> None:
    temp = layout.temp_name("packages/aa/f.whl", "1234")
    assert temp == "packages/aa/.f.whl.1234.mirror-tmp"
    assert layout.is_temp_name(temp.rpartition("/")[2])
    assert not layout.is_temp_name("f.whl")
