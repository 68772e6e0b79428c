"""Where a user's records come from: a JSONL file, a dataset saved to disk, or a Hugging Face Hub dataset, mapped to
the kit's contracts (kit/data.py) by a column mapping.

A source is a path, a Hub id, or a dict that is a `datasets.load_dataset` spec plus the mapping::

    "data/convs.jsonl"                      JSONL, one record per line
    "data/convs_ds"                         a folder written by Dataset.save_to_disk (a DatasetDict: its "train")
    "someone/roleplay-logs"                 a Hub dataset, split "train" (downloaded when the machine has a hub)
    {"path": "someone/roleplay-logs", "name": "en", "split": "test",          load_dataset's own arguments
     "columns": "sharegpt", "defaults": {"character_id": "luna"}}             the mapping, for any kind of source

The mapping, applied to every record before its contract is checked:

* `columns`: keys renamed, at the top level and inside every message: {"conversations": "messages",
  "from": "role", "value": "content"}; or "sharegpt", which is that with the roles below;
* `roles`: role values renamed ({"human": "user", "gpt": "assistant"});
* `defaults`: fields set on every record that has none ({"character_id": "luna"} for logs of one character).

Records from a dataset lose their null fields: Arrow gives every row every column, and a missing optional field
(a message without signals) reads back as null. Loading is never allowed to run code (no loading scripts, no
pickles): `datasets` 4 runs none.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

from .errors import DataError, ParameterError, said

MESSAGE_LISTS = ("messages", "prompt", "chosen", "rejected", "completion")
SHAREGPT = {"columns": {"conversations": "messages", "from": "role", "value": "content"},
            "roles": {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "bot": "assistant",
                      "model": "assistant", "chatgpt": "assistant", "system": "system"}}
LOAD_DATASET_KEYS = ("path", "name", "split", "data_files", "data_dir", "revision")
MAPPING_KEYS = ("columns", "roles", "defaults")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def describe(source) -> str:
    """How a source is named in messages (a file path, or the Hub id with its split)."""
    if isinstance(source, dict):
        path = source.get("path", "<source>")
        return f"{path}[{source['split']}]" if source.get("split") else str(path)
    return str(source)


def check_source(source, param: str = "source") -> dict:
    """A source as a dict {path, load_dataset arguments..., columns, roles, defaults}, every key checked."""
    spec = {"path": source} if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(spec, dict) or not isinstance(spec.get("path"), (str, os.PathLike)) or \
            not str(spec["path"]).strip():
        raise ParameterError(param, "a path, a Hub dataset id, or a dict with 'path' (and load_dataset's arguments, "
                             "'columns', 'roles', 'defaults')", source)
    unknown = sorted(set(spec) - set(LOAD_DATASET_KEYS) - set(MAPPING_KEYS))
    if unknown:
        raise ParameterError(f"{param}.{unknown[0]}", f"one of {', '.join(LOAD_DATASET_KEYS + MAPPING_KEYS)}",
                             unknown[0])
    spec = dict(spec, path=str(spec["path"]))
    columns = spec.get("columns") or {}
    roles = spec.get("roles") or {}
    if columns == "sharegpt":
        columns, roles = SHAREGPT["columns"], {**SHAREGPT["roles"], **roles}
    for key, value in (("columns", columns), ("roles", roles), ("defaults", spec.get("defaults") or {})):
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value) or \
                (key != "defaults" and not all(isinstance(v, str) and v for v in value.values())):
            raise ParameterError(f"{param}.{key}", "an object of names" + (' (or "sharegpt")' if key == "columns"
                                                                          else ""), value)
    spec.update(columns=columns, roles=roles, defaults=dict(spec.get("defaults") or {}))
    return spec


def kind_of(spec: dict) -> str:
    """'file' (JSONL), 'saved' (a folder written by save_to_disk) or 'hub' (load_dataset). A folder that is no saved
    dataset, and a missing path that is no Hub id, are 'file': reading them says what is wrong."""
    if "data_files" in spec or "data_dir" in spec:
        return "hub"   # a builder and its files: {"path": "json", "data_files": "logs/*.jsonl"}
    path = Path(spec["path"]).expanduser()
    if path.is_dir() and any((path / f).exists() for f in ("dataset_info.json", "dataset_dict.json", "state.json")):
        return "saved"
    if not path.exists() and _HUB_ID.match(spec["path"]) and not spec["path"].endswith((".jsonl", ".json")):
        return "hub"
    return "file"


def read(source, what: str, parse_jsonl) -> tuple[str, Iterator[tuple[int, dict]]]:
    """(name for messages, (line or row number, mapped record) for every record). `parse_jsonl(path, what)` reads a
    JSONL file the kit's way (kit.data), so a bad line is named by its number."""
    spec = check_source(source)
    kind = kind_of(spec)
    if kind == "file":
        path = spec["path"]
        rows = parse_jsonl(path, what)
        return path, ((n, _mapped(rec, spec)) for n, rec in rows)
    label = describe(spec)
    dataset = _dataset(spec, kind, what)
    return label, ((n, _mapped(_no_nulls(rec), spec)) for n, rec in enumerate(dataset, start=1))


def _dataset(spec: dict, kind: str, what: str):
    """The rows of a saved dataset or a Hub dataset (one split)."""
    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    split = spec.get("split")
    label = describe(spec)
    try:
        if kind == "saved":
            ds = load_from_disk(str(Path(spec["path"]).expanduser()))
        else:
            kwargs = {k: spec[k] for k in LOAD_DATASET_KEYS if k in spec and k != "path"}
            ds = load_dataset(spec["path"], **dict(kwargs, split=split or "train"))
    except FileNotFoundError as exc:
        raise DataError(label, None, None, f"{what} (a JSONL file, a folder written by save_to_disk, or a Hub "
                        f"dataset)", said(f"none of them ({_first_line(exc)})")) from None
    except (ValueError, ConnectionError, OSError) as exc:   # a bad split or config, no network, no such dataset
        raise DataError(label, None, None, f"{what} that datasets can load", said(_first_line(exc))) from None
    if isinstance(ds, DatasetDict):
        name = split or ("train" if "train" in ds else (next(iter(ds)) if len(ds) == 1 else None))
        if name not in ds:
            raise DataError(label, None, "split", f"one of {', '.join(ds)}", split)
        ds = ds[name]
    if not isinstance(ds, Dataset):
        raise DataError(label, None, None, "a dataset with rows", said(type(ds).__name__))
    return ds


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _no_nulls(value):
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_nulls(v) for v in value]
    return value


def _mapped(rec: dict, spec: dict) -> dict:
    columns, roles, defaults = spec["columns"], spec["roles"], spec["defaults"]
    if not (columns or roles or defaults) or not isinstance(rec, dict):
        return rec
    out = {columns.get(k, k): v for k, v in rec.items()}
    for key in MESSAGE_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_message(m, columns, roles) for m in out[key]]
    for key, value in defaults.items():
        out.setdefault(key, value)
    return out


def _message(msg, columns: dict, roles: dict):
    if not isinstance(msg, dict):
        return msg
    out = {columns.get(k, k): v for k, v in msg.items()}
    if isinstance(out.get("role"), str):
        out["role"] = roles.get(out["role"], out["role"])
    return out
