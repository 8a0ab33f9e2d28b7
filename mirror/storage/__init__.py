"""Where the mirror's tree lives. The sync engine only talks to :class:`Storage`."""

from mirror.storage.base import AsyncWriter, Storage, Writer
from mirror.storage.fs import FileStorage

__all__ = ["AsyncWriter", "FileStorage", "Storage", "Writer"]
