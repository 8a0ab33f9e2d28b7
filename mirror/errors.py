"""One exception tree with one root; the CLI maps it to exit codes (ARCHITECTURE.md, "Errors and exit codes")."""

from __future__ import annotations

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_CONFIG = 2
EXIT_LOCKED = 3
EXIT_ENVIRONMENT = 4


class MirrorError(Exception):
    """Root of every error mirror raises on purpose; ``str()`` is the one line shown to the user."""

    exit_code = EXIT_ENVIRONMENT


class ConfigError(MirrorError):
    """A bad, missing or unreadable config, or bad command-line usage."""

    exit_code = EXIT_CONFIG


class BundleRefused(MirrorError):
    """An airgap bundle that cannot be imported (altered, truncated, incomplete, out of order); nothing applied."""

    exit_code = EXIT_CONFIG


class Refused(MirrorError):
    """A distribution or request refused before anything was written (``mirror add``, an upload)."""

    exit_code = EXIT_CONFIG


class AlreadyPublished(Refused):
    """A private distribution whose file name the mirror already holds (an upload answers 409)."""

    def __init__(self, message: str, *, same: bool) -> None:
        super().__init__(message)
        self.same = same
        """True when the file held has the very bytes offered."""


class LockHeld(MirrorError):
    """Another run holds the mirror's lock."""

    exit_code = EXIT_LOCKED


class EnvironmentFault(MirrorError):
    """The machine or the network stops the whole run: disk full, permission denied, upstream gone."""

    exit_code = EXIT_ENVIRONMENT


class UpstreamUnreachable(EnvironmentFault):
    """The upstream index root cannot be fetched."""


class NotAnIndex(EnvironmentFault):
    """The upstream answers, but what it serves is no simple index (a directory listing, a web page)."""


class DeletionGuardTripped(EnvironmentFault):
    """The run would delete more of the mirror than the configured fraction allows."""


class StateLost(EnvironmentFault):
    """The state database is missing, empty or another mirror's while ``web/`` holds a published mirror.

    Every command that could delete or unpublish refuses; ``mirror verify --rebuild-state`` recovers.
    """


class ProjectError(MirrorError):
    """One project cannot be synced in this run; the others go on and it is retried next run."""

    exit_code = EXIT_PARTIAL


class UpstreamError(ProjectError):
    """The upstream answered for a project with something we cannot use (bad status, bad page)."""


class Deferred(ProjectError):
    """A project left as it is in this run, to be retried next run (reported as deferred, not failed)."""


class StalePage(Deferred):
    """The upstream served a project page older than its index promised."""


class SuspiciousPage(Deferred):
    """A project page that would delete too much of what the mirror holds for the project."""


class IntegrityError(ProjectError):
    """A downloaded file does not match its declared size or hash."""


class PrivateName(ProjectError):
    """A private project's name: reserved, never taken from the upstream (the dependency-confusion guard)."""


class UnsafeName(ProjectError):
    """A file name or URL that would escape the mirror directory, or is otherwise unusable."""


def unwrap(exc: BaseException) -> BaseException:
    """The one error worth reporting from a (nested) exception group raised by a task group.

    A run-stopping error outranks a project's failure, which outranks anything else; among
    equals, the first wins.
    """
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop(0)
        if isinstance(current, BaseExceptionGroup):
            stack[:0] = list(current.exceptions)
        else:
            leaves.append(current)
    for rank in (_is_fatal, _is_project, lambda _e: True):
        for leaf in leaves:
            if rank(leaf):
                return leaf
    return exc


def _is_fatal(exc: BaseException) -> bool:
    return isinstance(exc, MirrorError) and not isinstance(exc, ProjectError)


def _is_project(exc: BaseException) -> bool:
    return isinstance(exc, ProjectError)
