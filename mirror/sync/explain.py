"""``mirror sync --explain PROJECT``: every upstream file of one project, kept or dropped, by whom, why.

It fetches the project's page and runs the filters over it exactly as a sync would, deciding an
allowlist's dependency closure by the one the last run stored. It writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from urllib.parse import urljoin

from packaging.utils import NormalizedName
from rich.filesize import decimal

from mirror._config import Config
from mirror._http import TransientError, Upstream
from mirror.core import layout, parse
from mirror.core.closure import Want, grow
from mirror.core.filters import FilterChain
from mirror.core.models import ProjectPage
from mirror.errors import UpstreamError, UpstreamUnreachable


def with_stored_closure(chain: FilterChain, stored: Mapping[NormalizedName, str]) -> FilterChain:
    roots = chain.dependency_roots()
    if roots is None:
        return chain
    previous = {name: Want.from_key(text) for name, text in stored.items()}
    return chain.with_closure(grow(previous, roots, roots))


async def fetch_page(config: Config, name: str) -> ProjectPage:
    project = layout.project_name(name)
    url = urljoin(config.require_upstream(), f"{project}/")
    async with Upstream(config) as upstream:
        try:
            response = await upstream.get_page(url)
        except TransientError as exc:
            raise UpstreamUnreachable(f"cannot fetch {url}: {exc}") from None
    if response is None:
        raise UpstreamError(f"{project}: the upstream has no such project ({url} is 404)")
    if response.format == "json":
        return parse.parse_project_json(response.body, response.url, max_files=config.max_page_files)
    return parse.parse_project_html(response.body, response.url, project, max_files=config.max_page_files)


def explain_lines(chain: FilterChain, page: ProjectPage) -> Iterator[str]:
    verdicts = chain.explain(page)
    project = chain.project_decision(page.name)
    if project is not None:
        yield f"{page.name}: not mirrored, dropped by {project.plugin}: {project.reason}"
    width = max((len(v.file.filename) for v in verdicts), default=0)
    for verdict in verdicts:
        size = decimal(verdict.file.size) if verdict.file.size is not None else "size unknown"
        if verdict.dropped is None:
            yield f"  kept     {verdict.file.filename:<{width}}  {size}"
        else:
            by = verdict.dropped
            yield f"  dropped  {verdict.file.filename:<{width}}  {size}  by {by.plugin}: {by.reason}"
    kept = [v.file for v in verdicts if v.dropped is None]
    total = sum(f.size or 0 for f in kept)
    yield f"{page.name}: {len(kept)} of {len(verdicts)} files kept ({decimal(total)})"
