"""Parse simple repository pages (PEP 503 HTML, PEP 691 JSON) into models.

Pure: bytes plus a base URL in, frozen models out. Nothing here trusts its input: every
field is type-checked, hash digests are validated, sizes are bounded, and anything
unusable raises :class:`~mirror.errors.UpstreamError` with a one-line message.

Conventions shared by both formats:

* project names are normalized (and validated) with ``packaging.utils.canonicalize_name``;
* file URLs are resolved against the page URL (and ``<base href>`` in HTML) and carry no
  fragment: hashes live in :attr:`DistFile.hashes`;
* hash names are lower-cased; digests must be hex (and of the right length for the
  ``hashlib`` algorithms) and are lower-cased;
* in JSON an optional key set to ``null`` counts as absent (as pip reads it);
* ``""`` for ``requires-python`` / ``upload-time`` means unknown (None); ``yanked: ""``
  means yanked without a reason (True);
* PEP 658/714 metadata: ``core-metadata`` wins over the legacy ``dist-info-metadata`` (and
  PyPI's historic ``data-dist-info-metadata`` JSON key); a hash object without any hash
  means "available, hashes unknown" (True);
* PEP 792 status names are lower-cased; a ``quarantined`` page keeps its files (policy
  lives elsewhere);
* filenames are *not* checked for path safety here: that is the layout's job;
* read liberally, strict only where safety needs it: serials may be integers or decimal strings
  (bounded), a missing api-version means 1.0, and an optional field we cannot use (requires-python,
  upload-time, yanked, core-metadata, versions, project-status, provenance, a bad serial or api
  version) is dropped and noted in ``ProjectPage.dropped`` (root parsers: ``.dropped``) instead
  of failing the page. Names, filenames, URLs, hashes and sizes stay strict.

The root index can be huge (800,000 projects on PyPI), so :class:`IndexJsonParser` and
:class:`IndexHtmlParser` parse it incrementally with bounded memory, and read runs of plainly
written entries with regular expressions (``_root_runs``), falling back to the strict path for
anything else; ``feed_batch`` hands the projects over as two lists, not an object each.
"""

from mirror.core.parse._fields import MAX_ELEMENT_SIZE, Skipped, derive_versions, parse_serial
from mirror.core.parse._root_runs import IndexBatch
from mirror.core.parse.project_html import has_index_markers, parse_project_html
from mirror.core.parse.project_json import parse_project_json
from mirror.core.parse.root_html import IndexHtmlParser
from mirror.core.parse.root_json import IndexJsonParser

__all__ = [
    "MAX_ELEMENT_SIZE",
    "IndexBatch",
    "IndexHtmlParser",
    "IndexJsonParser",
    "Skipped",
    "derive_versions",
    "has_index_markers",
    "parse_project_html",
    "parse_project_json",
    "parse_serial",
]
