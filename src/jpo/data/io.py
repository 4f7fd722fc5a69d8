"""Reading rows from files, saved datasets and the hub; writing JSONL atomically.

Every row comes back with where it came from (file and line, or row number) so that a later validation error can
name the exact place. The readers are strict: a broken line is an error, never skipped.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpo.errors import DataError, JpoError

SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


@dataclass
class Table:
    """Rows of one source, each with its 1-based line (text files) or row number (everything else)."""

    path: str
    rows: list[dict[str, Any]]
    lines: list[int] | None = None  # line number of each row when the source is line-oriented
    meta: dict[str, Any] = field(default_factory=dict)

    def where(self, index: int) -> dict[str, int]:
        """Keyword arguments for DataError locating row `index`."""
        if self.lines is not None:
            return {"line": self.lines[index]}
        return {"row": index + 1}

    def error(self, index: int, message: str, field: str | None = None) -> DataError:
        return DataError(message, path=self.path, field=field, **self.where(index))


def _format_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _decode(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(f"invalid UTF-8 (byte {error.start})", path=path, line=line) from None


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        if path.suffix.lower() == ".gz":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read: {error}", path=path) from None
    return raw


def _json_lines(text: str, path: str) -> Table:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"broken JSON: {error.msg} (column {error.colno})", path=path, line=number) from None
        if not isinstance(value, dict):
            raise DataError(f"expected a JSON object per line, got {type(value).__name__}", path=path, line=number)
        rows.append(value)
        lines.append(number)
    return Table(path, rows, lines)


def _json(text: str, path: str) -> Table:
    """A JSON array of objects, or JSON Lines despite the name (the JPO authors' TL;DR test file)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":  # more than one top-level value: JSON Lines
            return _json_lines(text, path)
        raise DataError(f"broken JSON: {error.msg} (column {error.colno})", path=path, line=error.lineno) from None
    if isinstance(value, dict):
        return Table(path, [], None, {"object": value})
    if not isinstance(value, list):
        raise DataError(f"expected a JSON array of rows, got {type(value).__name__}", path=path)
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise DataError(f"expected a JSON object, got {type(item).__name__}", path=path, row=index + 1)
    return Table(path, value, None)


def _csv(text: str, path: str) -> Table:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows, lines = [], []
    try:
        for row in reader:
            if None in row:
                raise DataError("more cells than header columns", path=path, line=reader.line_num)
            rows.append(dict(row))
            lines.append(reader.line_num)
    except csv.Error as error:
        raise DataError(f"broken CSV: {error}", path=path, line=reader.line_num) from None
    return Table(path, rows, lines)


def _parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    try:
        if path.suffix.lower() == ".gz":
            table = pq.read_table(io.BytesIO(_read_bytes(path)))
        else:
            table = pq.read_table(path)
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except Exception as error:  # pyarrow raises several unrelated types for a corrupt file
        raise DataError(f"not a readable Parquet file: {error}", path=path) from None
    return Table(str(path), table.to_pylist(), None)


def _saved_dataset(path: Path, split: str | None) -> Table:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as error:
        raise DataError(f"not a saved `datasets` folder: {error}", path=path) from None
    if isinstance(loaded, datasets.DatasetDict):
        split = split or ("train" if "train" in loaded else next(iter(loaded)))
        if split not in loaded:
            raise DataError(f"no split '{split}' (has {', '.join(loaded)})", path=path)
        loaded = loaded[split]
    return Table(str(path) + (f":{split}" if split else ""), loaded.to_list(), None)


def read_hub(path: str, split: str = "train", **kwargs: Any) -> Table:
    """A dataset from the Hugging Face Hub (or any `datasets.load_dataset` path), e.g. `trl-lib/ultrafeedback_binarized`.

    `kwargs` go to `datasets.load_dataset` as they are: a config is `name=` (which is why the dataset is `path`),
    `data_dir=`, `data_files=`. Offline (HF_HUB_OFFLINE=1) a dataset loaded before is read from the datasets cache.
    A failure is one JpoError naming the dataset and split, instead of a long retry loop and a traceback.
    """
    import datasets

    try:
        loaded = datasets.load_dataset(path, split=split, **kwargs)
    except Exception as error:
        hint = " (no network: set HF_HUB_OFFLINE=1 and use a local copy)" if "offline" not in str(error).lower() else ""
        config = f" (config {kwargs['name']!r})" if kwargs.get("name") else ""
        raise JpoError(f"{path}{config}: cannot load dataset split '{split}': {type(error).__name__}: {error}{hint}"
                       ) from None
    return Table(f"{path}:{split}", loaded.to_list(), None)


def read_hub_file(repo: str, filename: str) -> Table:
    """One file of a Hub dataset repository (downloaded once, then read from the hub cache, offline too), for repos
    that `datasets.load_dataset` cannot read by name (tatsu-lab/alpaca_eval is a loading script)."""
    from huggingface_hub import hf_hub_download

    try:
        local = hf_hub_download(repo, filename, repo_type="dataset")
    except Exception as error:
        raise JpoError(f"{repo}: cannot fetch {filename}: {type(error).__name__}: {error}") from None
    table = read_table(local)
    return Table(f"{repo}/{filename}", table.rows, table.lines, table.meta)


def split_source(source: str) -> tuple[str, str | None]:
    """`NAME:split` -> (NAME, split); a plain path or name has no split."""
    if ":" in source and not Path(source).exists():
        name, _, split = source.rpartition(":")
        if name and split and "/" not in split:
            return name, split
    return source, None


def read_table(source: str | os.PathLike) -> Table:
    """Rows of a file (.jsonl, .json, .parquet, .csv, each optionally .gz), a saved dataset folder, or a hub name.

    A JSON object where rows are expected comes back with no rows and the object in `meta["object"]`, so callers
    that know such objects (verdict maps) can read it and everyone else can report it.
    """
    text_source = os.fspath(source)
    name, split = split_source(text_source)
    path = Path(name)
    if path.is_dir():
        return _saved_dataset(path, split)
    suffix = _format_suffix(path)
    if not path.exists():
        if suffix or name.startswith((".", "/", "~")) or name.count("/") != 1:
            raise DataError("file not found", path=name)
        return read_hub(name, split or "train")
    if suffix == ".parquet":
        return _parquet(path)
    if suffix not in (".jsonl", ".json", ".csv"):
        raise DataError(f"unknown file type '{suffix or path.name}' (use {', '.join(SUFFIXES)}, optionally .gz)", path=path)
    raw = _read_bytes(path)
    if not raw.strip():
        raise DataError("file is empty", path=path)
    text = _decode(raw, str(path))
    if suffix == ".csv":
        return _csv(text, str(path))
    if suffix == ".json":
        return _json(text, str(path))
    return _json_lines(text, str(path))


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a JSON Lines file (strict: a broken line is an error naming it)."""
    return read_table(path).rows


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSON Lines atomically (a crash never leaves half a file); returns the number of rows.

    The file gets the mode a plain `open` would give it: an existing file's own, else 0o666 less the umask (the
    temporary file it is renamed from is 0o600). A directory (or a parent that is a file) at `path` is a one-line
    JpoError, not a traceback."""
    target = Path(path)
    if target.is_dir():
        raise JpoError(f"{path}: is a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
        )
    except OSError as error:
        raise JpoError(f"{path}: cannot write ({error.strerror or error})") from None
    count = 0
    try:
        with handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False))
                handle.write("\n")
                count += 1
        os.chmod(handle.name, _file_mode(target))
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return count


def _file_mode(target: Path) -> int:
    """The permission bits `open(target, "w")` would leave: the existing file's, else 0o666 & ~umask."""
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)  # the only portable way to read it: set and restore at once
        os.umask(umask)
        return 0o666 & ~umask
