"""Where the mirror's tree lives. The sync engine only talks to :class:`Storage`."""

from mirror.storage.base import Storage, Writer
from mirror.storage.fs import FileStorage

__all__ = ["FileStorage", "Storage", "Writer"]
