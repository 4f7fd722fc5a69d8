"""User-facing errors.

Bad input must end in one line that names the file, the line (or row) and the field, never in a traceback: the CLI
catches `JpoError`, prints `str(error)` and exits with status 2. Library users catch the same class.
"""

from __future__ import annotations

import os


class JpoError(ValueError):
    """An error the user can fix; its message is complete on one line.

    A `ValueError`, so code written for TRL (which raises ValueError for bad arguments and data) keeps catching it."""


class DataError(JpoError):
    """Bad input data, located as precisely as the reader knows: file, line (or row) and field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        line: int | None = None,
        field: str | None = None,
        row: int | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.row = row
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.path or "<data>"
        if self.line is not None:
            where += f":{self.line}"
        elif self.row is not None:
            where += f": row {self.row}"
        if self.field is not None:
            where += f": field '{self.field}'"
        return f"{where}: {self.message}".replace("\n", " ")
