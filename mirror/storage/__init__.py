"""Where the mirror's tree lives. The engine, verify, import and export only talk to :class:`Storage`."""

from mirror.storage.base import AsyncWriter, ChangeHook, Entry, Storage
from mirror.storage.fs import FileStorage
from mirror.storage.memory import MemoryStorage

__all__ = ["AsyncWriter", "ChangeHook", "Entry", "FileStorage", "MemoryStorage", "Storage"]
