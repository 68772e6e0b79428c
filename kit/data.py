"""Data contracts: what every stage reads and writes, and loaders that say exactly what is wrong with a file.

Four record kinds, each one JSON object per line (JSONL), except cards (one JSON file each):

* conversation: {"conversation_id", "character_id", "source": "user"|"internal", "messages": [...]}
  each message {"role": "system"|"user"|"assistant", "content": str}; an assistant message may carry
  "signals": {"continue", "thumb_up", "thumb_down", "regenerate"} as 0/1. Optional: "user_id", "day", "policy".
* character card: Character Card V2 ({"spec": "chara_card_v2", "data": {...}}) with our checkable instructions
  under data.extensions.flywheel.instructions (see kit/world/characters.py).
* preference pair (TRL's conversational form): {"prompt": [messages], "chosen": [assistant message],
  "rejected": [assistant message]}; optional "character_id", "source", "n_raters", "agreement".
* A/B log event: {"type": "exposure"|"message", "user_id", "arm": "control"|"treatment", "day": int}.

A bad record raises DataError naming the file, the line, the field and what was expected; nothing is written.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import DataError, KitError
from .paths import atomic_path

ROLES = ("system", "user", "assistant")
SOURCES = ("user", "internal")
SIGNALS = ("continue", "thumb_up", "thumb_down", "regenerate")
ARMS = ("control", "treatment")
AB_EVENTS = ("exposure", "message")


# ---------------------------------------------------------------------------------------------- validators
def _check_messages(messages, path, line, field="messages", need_assistant_last=False):
    if not isinstance(messages, list) or not messages:
        raise DataError(path, line, field, "a non-empty list of messages", messages)
    for k, msg in enumerate(messages):
        where = f"{field}[{k}]"
        if not isinstance(msg, dict):
            raise DataError(path, line, where, "an object with 'role' and 'content'", msg)
        if "role" not in msg:
            raise DataError(path, line, f"{where}.role", f"one of {', '.join(ROLES)} (it is missing)")
        if msg["role"] not in ROLES:
            raise DataError(path, line, f"{where}.role", f"one of {', '.join(ROLES)}", msg["role"])
        content = msg.get("content")
        if not isinstance(content, str) or not content.strip():
            raise DataError(path, line, f"{where}.content", "a non-empty string", content)
        if msg["role"] == "system" and k != 0:
            raise DataError(path, line, f"{where}.role", "'system' only as the first message", msg["role"])
        if "signals" in msg:
            sig = msg["signals"]
            if msg["role"] != "assistant" or not isinstance(sig, dict):
                raise DataError(path, line, f"{where}.signals", "an object, on assistant messages only", sig)
            for key, val in sig.items():
                if key not in SIGNALS:
                    raise DataError(path, line, f"{where}.signals.{key}", f"one of {', '.join(SIGNALS)}", key)
                if val not in (0, 1) or isinstance(val, float):
                    raise DataError(path, line, f"{where}.signals.{key}", "0 or 1", val)
    if need_assistant_last and messages[-1]["role"] != "assistant":
        raise DataError(path, line, f"{field}[-1].role", "'assistant'", messages[-1]["role"])


def _require(record, key, kind, path, line, expected):
    if key not in record:
        raise DataError(path, line, key, f"{expected} (it is missing)")
    value = record[key]
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise DataError(path, line, key, expected, value)
    return value


def validate_conversation(rec: dict, path="<record>", line=None) -> dict:
    _require(rec, "conversation_id", str, path, line, "a non-empty string")
    _require(rec, "character_id", str, path, line, "a non-empty string")
    source = _require(rec, "source", str, path, line, "'user' or 'internal'")
    if source not in SOURCES:
        raise DataError(path, line, "source", "'user' or 'internal'", source)
    _check_messages(rec.get("messages"), path, line)
    if not any(m["role"] == "assistant" for m in rec["messages"]):
        raise DataError(path, line, "messages", "at least one assistant message")
    if "day" in rec and (not isinstance(rec["day"], int) or rec["day"] < 0):
        raise DataError(path, line, "day", "an integer >= 0", rec["day"])
    return rec


def validate_preference(rec: dict, path="<record>", line=None) -> dict:
    _check_messages(rec.get("prompt"), path, line, "prompt")
    if rec["prompt"][-1]["role"] != "user":
        raise DataError(path, line, "prompt[-1].role", "'user' (the reply being judged answers it)",
                        rec["prompt"][-1]["role"])
    for key in ("chosen", "rejected"):
        _check_messages(rec.get(key), path, line, key, need_assistant_last=True)
        if len(rec[key]) != 1:
            raise DataError(path, line, key, "exactly one assistant message", len(rec[key]))
    if rec["chosen"][0]["content"] == rec["rejected"][0]["content"]:
        raise DataError(path, line, "rejected", "a reply different from 'chosen'")
    return rec


def validate_ab_event(rec: dict, path="<record>", line=None) -> dict:
    kind = _require(rec, "type", str, path, line, f"one of {', '.join(AB_EVENTS)}")
    if kind not in AB_EVENTS:
        raise DataError(path, line, "type", f"one of {', '.join(AB_EVENTS)}", kind)
    _require(rec, "user_id", str, path, line, "a non-empty string")
    arm = _require(rec, "arm", str, path, line, "'control' or 'treatment'")
    if arm not in ARMS:
        raise DataError(path, line, "arm", "'control' or 'treatment'", arm)
    day = rec.get("day")
    if not isinstance(day, int) or isinstance(day, bool) or day < 0:
        raise DataError(path, line, "day", "an integer >= 0", day)
    return rec


# ---------------------------------------------------------------------------------------------- JSONL io
def iter_jsonl(path: str | Path, validate: Callable | None = None) -> Iterator[dict]:
    path = Path(path)
    if not path.exists():
        raise KitError(f"{path}: file not found")
    with path.open(encoding="utf-8") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError(path, n, None, f"one JSON object per line ({exc.msg} at column {exc.colno})") from None
            if not isinstance(rec, dict):
                raise DataError(path, n, None, "a JSON object", type(rec).__name__)
            yield validate(rec, path, n) if validate else rec


def read_jsonl(path, validate: Callable | None = None) -> list[dict]:
    return list(iter_jsonl(path, validate))


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    with atomic_path(path) as tmp:
        with tmp.open("w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
    return Path(path)


def load_conversations(path) -> list[dict]:
    return read_jsonl(path, validate_conversation)


def load_preferences(path) -> list[dict]:
    return read_jsonl(path, validate_preference)


def load_ab_log(path) -> list[dict]:
    return read_jsonl(path, validate_ab_event)


# ---------------------------------------------------------------------------------------------- HF datasets
def save_dataset(records: list[dict], path: str | Path):
    """Records -> a Hugging Face dataset on disk (atomic). Nested fields are kept as they are."""
    from datasets import Dataset

    ds = Dataset.from_list(records) if records else Dataset.from_dict({})
    with atomic_path(path) as tmp:
        ds.save_to_disk(str(tmp))
    return ds


def load_dataset_dir(path: str | Path):
    """A dataset saved by `save_dataset`; an empty one (no records, e.g. no consensus pairs) loads as empty."""
    from datasets import Dataset, load_from_disk

    path = Path(path)
    if not path.exists():
        raise KitError(f"{path}: no dataset here (has the stage that writes it run?)")
    state = path / "state.json"
    if state.exists() and not json.loads(state.read_text(encoding="utf-8")).get("_data_files"):
        return Dataset.from_dict({})
    return load_from_disk(str(path))


def import_conversations(src: str | Path, dest: str | Path) -> list[dict]:
    """Validate a whole conversations file, then write it to `dest`. On any bad record nothing is written."""
    records = load_conversations(src)
    write_jsonl(dest, records)
    return records
