"""Data contracts: what every stage reads and writes, and loaders that say exactly what is wrong with a file.

Four record kinds, each one JSON object per line (JSONL), except cards (one JSON file each):

* conversation: {"conversation_id", "character_id", "source": "user"|"internal", "messages": [...]}
  each message {"role": "system"|"user"|"assistant", "content": str}; an assistant message may carry
  "signals": {"continue", "thumb_up", "thumb_down", "regenerate"} as 0/1. Optional: "user_id", "user_name",
  "day", "policy".
* character card: Character Card V2 ({"spec": "chara_card_v2", "data": {...}}) with our checkable instructions
  under data.extensions.flywheel.instructions (see kit/world/characters.py).
* preference pair (TRL's conversational form): {"prompt": [messages], "chosen": [assistant message],
  "rejected": [assistant message]}; optional "character_id", "source", "n_raters", "votes_chosen", "agreement".
* A/B log event: {"type": "exposure"|"message", "user_id", "arm": "control"|"treatment", "day": int}.

A bad record raises DataError naming the file, the line, the field and what was expected; nothing is written.
What is refused, and why (README, "Data contracts"):

* a file that is missing, a folder, empty, not UTF-8 (a UTF-8 byte-order mark is read), or not one JSON object per
  line; NaN or Infinity (not JSON numbers) and a key twice in one object;
* roles out of order: after an optional system message, user and assistant alternate, starting with the user
  (every chat template and trainer downstream assumes it; a reply with no user message before it answers nothing);
* `true` where a 0/1 signal or a day is expected (JSON booleans are not numbers here), numbers out of range
  (a negative day, agreement outside [0, 1], n_raters < 1, votes above n_raters);
* a conversation id used twice in one file (turns of two conversations would merge), a user in both A/B arms,
  `chosen` equal to `rejected` up to whitespace (a pair that teaches nothing);
* personal data in an identifier field (conversation_id, user_id, ...): ids are kept verbatim, so they must be
  opaque; free-text fields are redacted instead (kit/privacy.py);
* with `cards`, a character id outside the cast.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import DataError, KitError, ParameterError, said
from .paths import atomic_path

ROLES = ("system", "user", "assistant")
SOURCES = ("user", "internal")
SIGNALS = ("continue", "thumb_up", "thumb_down", "regenerate")
ARMS = ("control", "treatment")
AB_EVENTS = ("exposure", "message")


# ---------------------------------------------------------------------------------------------- reading files
class _BadJSON(ValueError):
    def __init__(self, field, expected, got=None):
        super().__init__(expected)
        self.field, self.expected, self.got = field, expected, got


def _no_constant(name):
    raise _BadJSON(None, "standard JSON numbers (NaN and Infinity are not JSON)", said(name))


def _unique_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise _BadJSON(key, "each key once per object")
        out[key] = value
    return out


def parse_json(text: str, path, line: int | None, expected: str = "valid JSON"):
    """json.loads that refuses NaN/Infinity and repeated keys, with the kit's error naming file and line."""
    try:
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except _BadJSON as exc:
        raise DataError(path, line, exc.field, exc.expected, exc.got) from None
    except json.JSONDecodeError as exc:
        where = line if line is not None else exc.lineno
        raise DataError(path, where, None, f"{expected} ({exc.msg}; column {exc.colno})") from None


def user_file(path, what: str) -> Path:
    """`path` as a file to read, or the kit's error saying why it cannot be (no path, missing, a folder)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise DataError("<path>", None, None, f"the path of {what}", path)
    path = Path(path).expanduser()
    if path.is_dir():
        raise DataError(path, None, None, what, said("a folder"))
    if not path.is_file():
        raise DataError(path, None, None, f"{what} (no such file)")
    return path


def read_lines(path, what: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file; a byte-order mark is skipped, a byte that is not UTF-8 is an error
    naming its line and column."""
    path = user_file(path, what)
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for n, line in enumerate(raw.split(b"\n"), start=1):
        try:
            yield n, line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(path, n, None, "UTF-8 text",
                            said(f"byte 0x{line[exc.start]:02x} at column {exc.start + 1}")) from None


def read_text(path, what: str) -> str:
    """A whole UTF-8 file (a card), read with the same checks as JSONL files."""
    return "\n".join(text for _, text in read_lines(path, what))


# ---------------------------------------------------------------------------------------------- validators
def _check_messages(messages, path, line, field="messages", need_assistant_last=False, alternate=True):
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
        if alternate and msg["role"] != "system":
            expected = "user" if (k - (messages[0]["role"] == "system")) % 2 == 0 else "assistant"
            if msg["role"] != expected:
                raise DataError(path, line, f"{where}.role", f"'{expected}' (after an optional system message, "
                                "user and assistant alternate, starting with the user)", msg["role"])
        if "signals" in msg:
            sig = msg["signals"]
            if msg["role"] != "assistant" or not isinstance(sig, dict):
                raise DataError(path, line, f"{where}.signals", "an object, on assistant messages only", sig)
            for key, val in sig.items():
                if key not in SIGNALS:
                    raise DataError(path, line, f"{where}.signals.{key}", f"one of {', '.join(SIGNALS)}", key)
                if type(val) is not int or val not in (0, 1):
                    raise DataError(path, line, f"{where}.signals.{key}", "0 or 1", val)
    if need_assistant_last and messages[-1]["role"] != "assistant":
        raise DataError(path, line, f"{field}[-1].role", "'assistant'", messages[-1]["role"])


def _require(record, key, kind, path, line, expected):
    if key not in record:
        raise DataError(path, line, key, f"{expected} (it is missing)")
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
        raise DataError(path, line, key, expected, value)
    return value


def _optional(record, key, check, path, line, expected):
    """An optional field: absent or null is fine, anything else must pass `check`."""
    value = record.get(key)
    if value is not None and not check(value):
        raise DataError(path, line, key, expected, value)
    return value


def _is_int(value, low=None, high=None) -> bool:
    return type(value) is int and (low is None or value >= low) and (high is None or value <= high)


def _is_number(value, low=None, high=None) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and (low is None or value >= low) and \
        (high is None or value <= high)


def _is_text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _opaque_ids(rec, keys, path, line):
    """Identifier fields are kept verbatim (a placeholder would merge every user into one): refuse personal data
    there rather than redact it. The message names the kind of datum, never the datum."""
    from .privacy import find_pii

    for key in keys:
        value = rec.get(key)
        found = find_pii(value) if isinstance(value, str) else []
        if found:
            raise DataError(path, line, key, f"an opaque id, not personal data (it holds {found[0].kind})")


def validate_conversation(rec: dict, path="<record>", line=None) -> dict:
    _require(rec, "conversation_id", str, path, line, "a non-empty string")
    _require(rec, "character_id", str, path, line, "a non-empty string")
    source = _require(rec, "source", str, path, line, "'user' or 'internal'")
    if source not in SOURCES:
        raise DataError(path, line, "source", "'user' or 'internal'", source)
    for key in ("user_id", "policy"):
        _optional(rec, key, _is_text, path, line, "a non-empty string")
    _optional(rec, "user_name", lambda v: isinstance(v, str), path, line, "a string")
    _optional(rec, "day", lambda v: _is_int(v, 0), path, line, "an integer >= 0")
    _check_messages(rec.get("messages"), path, line)
    if not any(m["role"] == "assistant" for m in rec["messages"]):
        raise DataError(path, line, "messages", "at least one assistant message")
    _opaque_ids(rec, ("conversation_id", "character_id", "user_id", "policy"), path, line)
    return rec


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def validate_preference(rec: dict, path="<record>", line=None) -> dict:
    _check_messages(rec.get("prompt"), path, line, "prompt")
    if rec["prompt"][-1]["role"] != "user":
        raise DataError(path, line, "prompt[-1].role", "'user' (the reply being judged answers it)",
                        rec["prompt"][-1]["role"])
    for key in ("chosen", "rejected"):
        _check_messages(rec.get(key), path, line, key, need_assistant_last=True, alternate=False)
        if len(rec[key]) != 1:
            raise DataError(path, line, key, "exactly one assistant message", len(rec[key]))
    chosen, rejected = rec["chosen"][0]["content"], rec["rejected"][0]["content"]
    if _same_text(chosen, rejected):
        raise DataError(path, line, "rejected", "a reply different from 'chosen' (equal up to whitespace)")
    from .privacy import redact

    if _same_text(redact(chosen)[0], redact(rejected)[0]):   # they would be equal once imported
        raise DataError(path, line, "rejected", "a reply different from 'chosen' once personal data is redacted")
    for key in ("character_id", "conversation_id", "prompt_id", "user_id", "origin"):
        _optional(rec, key, _is_text, path, line, "a non-empty string")
    _optional(rec, "user_name", lambda v: isinstance(v, str), path, line, "a string")
    _optional(rec, "source", lambda v: v in SOURCES, path, line, "'user' or 'internal'")
    n_raters = _optional(rec, "n_raters", lambda v: _is_int(v, 1), path, line, "an integer >= 1")
    _optional(rec, "votes_chosen", lambda v: _is_int(v, 0, n_raters), path, line,
              f"an integer from 0 to n_raters ({n_raters})" if n_raters else "an integer >= 0")
    _optional(rec, "agreement", lambda v: _is_number(v, 0, 1), path, line, "a number from 0 to 1")
    _optional(rec, "single_rater_agrees", lambda v: isinstance(v, bool), path, line, "true or false")
    _opaque_ids(rec, ("character_id", "conversation_id", "prompt_id", "user_id"), path, line)
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
    if not _is_int(day, 0):
        raise DataError(path, line, "day", "an integer >= 0", day)
    _opaque_ids(rec, ("user_id",), path, line)
    return rec


# ---------------------------------------------------------------------------------------------- JSONL io
def iter_jsonl(path: str | Path, validate: Callable | None = None, what: str = "a JSONL file") -> Iterator[dict]:
    for _, rec in _numbered(path, validate, what):
        yield rec


def _numbered(path, validate, what) -> Iterator[tuple[int, dict]]:
    for n, raw in read_lines(path, what):
        if not raw.strip():
            continue
        rec = parse_json(raw, path, n, "one JSON object per line")
        if not isinstance(rec, dict):
            raise DataError(path, n, None, "a JSON object", said(f"a JSON {_json_type(rec)}"))
        yield n, (validate(rec, path, n) if validate else rec)


def _json_type(value) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def read_jsonl(path, validate: Callable | None = None) -> list[dict]:
    return list(iter_jsonl(path, validate))


def _load(source, validate, what: str, prepare: Callable | None = None) -> tuple[str, list[tuple[int, dict]]]:
    """(name, every record of a user's source with its line or row), each prepared (defaults, other accepted forms)
    and validated in order. The source is a JSONL file, a saved dataset or a Hub dataset, with a column mapping
    (kit/sources.py). An empty source is an error: an empty import would train or report on nothing, silently."""
    from .sources import read

    label, records = read(source, what, lambda path, what: _numbered(path, None, what))
    rows = [(n, validate(prepare(rec, label, n) if prepare else rec, label, n)) for n, rec in records]
    if not rows:
        raise DataError(label, None, None, f"at least one record ({what})", said("an empty file"))
    return label, rows


def _check_cast(rows, cards, path):
    if cards is None:
        return
    for n, rec in rows:
        if rec.get("character_id") not in cards:
            raise DataError(path, n, "character_id", f"one of the cast ({', '.join(sorted(cards))})",
                            rec.get("character_id"))


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    with atomic_path(path) as tmp:
        with tmp.open("w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
    return Path(path)


def conversation_defaults(rec: dict, path=None, line: int | None = None) -> dict:
    """What a log without the kit's bookkeeping leaves out: `source` is real user traffic, and the conversation is
    named by its line (or row). A field that is present, even null, is checked as it is."""
    rec = dict(rec)
    rec.setdefault("source", "user")
    if line is not None:
        rec.setdefault("conversation_id", f"row-{line}")
    return rec


def load_conversations(path, cards: dict | None = None) -> list[dict]:
    """Conversations in the contract; with `cards`, every character id must be one of the cast. `path`: any source
    (kit/sources.py)."""
    path, rows = _load(path, validate_conversation, "a JSONL file of conversations", conversation_defaults)
    seen: dict[str, int] = {}
    for n, rec in rows:
        first = seen.setdefault(rec["conversation_id"], n)
        if first != n:
            raise DataError(path, n, "conversation_id", f"an id not used before in the file (line {first} has it)",
                            rec["conversation_id"])
    _check_cast(rows, cards, path)
    return [rec for _, rec in rows]


def preference_form(rec: dict, path=None, line: int | None = None) -> dict:
    """TRL's other preference forms, as the conversational one with an explicit prompt:

    * standard: "prompt", "chosen" and "rejected" plain strings (a user message and two replies);
    * implicit prompt: no "prompt", and "chosen" / "rejected" whole conversations that share their opening (the
      prompt) and differ in the final assistant message.
    """
    prompt, chosen, rejected = rec.get("prompt"), rec.get("chosen"), rec.get("rejected")
    if isinstance(prompt, str) and isinstance(chosen, str) and isinstance(rejected, str):
        return dict(rec, prompt=[{"role": "user", "content": prompt}],
                    chosen=[{"role": "assistant", "content": chosen}],
                    rejected=[{"role": "assistant", "content": rejected}])
    if "prompt" not in rec and isinstance(chosen, list) and isinstance(rejected, list):
        k = 0
        while k < min(len(chosen), len(rejected)) - 1 and chosen[k] == rejected[k]:
            k += 1
        return dict(rec, prompt=chosen[:k], chosen=chosen[k:], rejected=rejected[k:])
    if "prompt" not in rec and isinstance(chosen, str):
        raise DataError(path, line, "prompt", "a prompt: plain-string chosen/rejected need one (TRL's implicit-"
                        "prompt form is conversational: lists of messages sharing their opening)")
    return rec


def load_preferences(path, cards: dict | None = None) -> list[dict]:
    """Preference pairs in the contract, or in TRL's standard or implicit-prompt form (`preference_form`); with
    `cards`, every character id must be one of the cast. `path`: any source (kit/sources.py)."""
    path, rows = _load(path, validate_preference, "a JSONL file of preference pairs", preference_form)
    _check_cast(rows, cards, path)
    return [rec for _, rec in rows]


def _timestamp_day(value, path, line) -> int:
    """A timestamp's day number (UTC days since 1970): ISO 8601 text, or seconds (milliseconds above 1e11) since
    the epoch."""
    import datetime as dt

    try:
        if isinstance(value, str):
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            when = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
        elif type(value) in (int, float) and math.isfinite(value):
            when = dt.datetime.fromtimestamp(value / 1000 if value > 1e11 else value, dt.timezone.utc)
        else:
            raise ValueError
    except (ValueError, OverflowError, OSError):
        raise DataError(path, line, "timestamp", "an ISO 8601 time or seconds since 1970", value) from None
    return (when.astimezone(dt.timezone.utc).date() - dt.date(1970, 1, 1)).days


def load_ab_log(path, arms: dict | None = None) -> list[dict]:
    """A/B events in the contract; a user in both arms is an error (the test would compare them with themselves).

    A real test's log may name its arms otherwise (`arms`: {"A": "control", "B": "treatment"}) and carry a
    `timestamp` instead of a `day`: days are then counted from the first event's UTC date."""
    arms = arms or {}
    if not isinstance(arms, dict) or not all(v in ARMS for v in arms.values()):
        raise ParameterError("arms", "an object mapping the log's arm names to control and treatment", arms)

    def prepare(rec, where, line):
        rec = dict(rec)
        if isinstance(rec.get("arm"), str):
            rec["arm"] = arms.get(rec["arm"], rec["arm"])
        if "day" not in rec and "timestamp" in rec:
            rec["day"], rec["_timestamped"] = _timestamp_day(rec["timestamp"], where, line), True
        return rec

    path, rows = _load(path, validate_ab_event, "a JSONL file of A/B events", prepare)
    stamped = [rec for _, rec in rows if rec.pop("_timestamped", False)]
    if stamped:
        first = min(rec["day"] for rec in stamped)
        for rec in stamped:
            rec["day"] -= first
    arm_of: dict[str, tuple[str, int]] = {}
    for n, rec in rows:
        arm, first = arm_of.setdefault(rec["user_id"], (rec["arm"], n))
        if arm != rec["arm"]:
            raise DataError(path, n, "arm", f"'{arm}', the arm of user {rec['user_id']!r} on line {first}",
                            rec["arm"])
    return [rec for _, rec in rows]


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


def load_generations(run, generation: int, name: str, *, accumulate: bool = True,
                     writer: str = "the notebook that writes it") -> list[tuple]:
    """(g, record) for every record of dataset `name` (an artifact, e.g. "policy.rs.sft_data") of generation
    `generation`, or, with `accumulate`, of every generation up to it that has one, oldest first (labels and SFT
    sets grow across generations). The current generation's dataset must exist."""
    out = []
    for g in range(0 if accumulate else generation, generation + 1):
        path = run.artifact(g, name, create=False)
        if path.exists():
            out += [(g, rec) for rec in load_dataset_dir(path).to_list()]
        elif g == generation:
            raise KitError(f"{path}: not found (run {writer} for generation {g} first)")
    return out


def import_conversations(src: str | Path, dest: str | Path, cards: dict | None = None) -> list[dict]:
    """Validate a whole conversations file, redact every field, then write it to `dest`: a copy in a run directory
    holds no raw personal data (the user's file stays where it is). On any bad record nothing is written."""
    from .privacy import assert_no_pii, redact_records

    records, _ = redact_records(load_conversations(src, cards))
    assert_no_pii(records, str(dest))
    write_jsonl(dest, records)
    return records
