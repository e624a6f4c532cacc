"""The project's error types: what ``mmtok`` reports as a one-line error instead of a traceback.

Raise one of these for a fault of the input (an option, an argument, a file the user named or
its contents); the command line prints the message and exits with status 2. Any other
exception is a bug and keeps its traceback. Imports nothing, so every layer can use it.
"""
from __future__ import annotations


class MmtokError(Exception):
    """Base of every error the project raises on purpose for bad input."""


class UserInputError(MmtokError, ValueError):
    """A value the user gave (an option, an argument, a setting or file contents) is unusable.

    Also a ``ValueError``, so callers that catch ``ValueError`` keep working.
    """


class InputFileNotFoundError(MmtokError, FileNotFoundError):
    """A file or folder the user named does not exist (also a ``FileNotFoundError``)."""


class OutputExistsError(MmtokError, FileExistsError):
    """An output the command would write exists already; nothing is overwritten."""


__all__ = ['InputFileNotFoundError', 'MmtokError', 'OutputExistsError', 'UserInputError']
