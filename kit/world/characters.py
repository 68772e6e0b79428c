"""Character cards as the role-play community writes them, with the kit's checkable instructions.

Read: Character Card V2 (`chara_card_v2`), V3 (`chara_card_v3`) and V1 (flat JSON, TavernAI's fields), as JSON
files or as PNG images carrying the card in a `ccv3` or `chara` text chunk (base64 JSON, what SillyTavern and
chub.ai write). Written: V2 JSON, or V3 for a card read as V3; every field the kit does not use (character_book,
alternate_greetings, other tools' extensions) is kept.

The kit's additions live where V2 puts application data, so other tools keep them::

    "extensions": {"flywheel": {"id": "captain_rook", "category": "fictional_figure", "topics": [...],
                                "instructions": [{"type": ...}, ...], "greeting_turn": false}}

A card without them (any community card) gets its id from its file name, the category `companion` and no
checkable instructions: nothing is inferred from its prose. Instructions and a category can be added without
touching the card, in a side file `<card file stem>.flywheel.json` holding the same object.

The policy's prompt uses the fields front ends use: the card's own `system_prompt` first, then name, description,
personality, scenario, `mes_example`, the checkable rules; `first_mes` as the opening assistant turn (unless
`greeting_turn` is false); `post_history_instructions` after the conversation, at the end of the last user turn.
`{{char}}` and `{{user}}` are filled in. A field left empty adds nothing, so a card that sets only name,
description, personality and scenario renders exactly as the kit's own cards always have.
"""
from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError, KitError, ParameterError, said
from ..paths import samples_dir, write_json
from . import instructions as ins

CATEGORIES = ("companion", "game_master", "tutor", "fictional_figure", "coach", "lifestyle")
DEFAULT_CATEGORY = "companion"   # the commonest kind of community card; a side file or the extension can say otherwise
V2_TEXT_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example", "creator_notes",
                  "system_prompt", "post_history_instructions")
SPECS = {"chara_card_v2": "2.0", "chara_card_v3": "3.0"}
V1 = "chara_card_v1"   # no spec field: TavernAI's flat JSON
SIDE_FILE = ".flywheel.json"
DEFAULT_USER = "User"   # what front ends call a user who set no name
_CORE = ("name", "description", "personality", "scenario", "first_mes", "tags")


@dataclass
class Card:
    id: str
    name: str
    category: str
    description: str
    personality: str
    scenario: str
    first_mes: str
    instructions: list[dict]
    topics: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)   # every other field, kept for a faithful export
    spec: str = "chara_card_v2"                  # the format it was read from
    # first_mes as the assistant's opening turn. The kit's own 14 cards set it false: their traffic, annotation and
    # every measured result were made with prompts that open on the user's message, and a greeting before it would
    # change every prompt the policy has seen.
    greeting_turn: bool = True

    # -- the fields front ends use, with {{char}} and {{user}} filled in -----------------------------------------
    def _field(self, key: str) -> str:
        value = self.extra.get(key, "")
        return value if isinstance(value, str) else ""

    def fill(self, text: str, user_name: str | None = None) -> str:
        """{{char}} / {{user}} (any case; V1's <BOT> / <USER>) replaced; a V3 card's nickname stands for {{char}}."""
        if "{{" not in text and "<" not in text:
            return text
        char = self._field("nickname") or self.name
        text = re.sub(r"\{\{char\}\}|<BOT>", lambda m: char, text, flags=re.IGNORECASE)
        return re.sub(r"\{\{user\}\}|<USER>", lambda m: user_name or DEFAULT_USER, text, flags=re.IGNORECASE)

    def _examples(self, user_name: str | None) -> str:
        """mes_example without its <START> separators (a blank line between examples instead)."""
        blocks = [b.strip() for b in re.split(r"^\s*<START>\s*$", self._field("mes_example"),
                                              flags=re.IGNORECASE | re.MULTILINE)]
        return self.fill("\n\n".join(b for b in blocks if b), user_name)

    def greeting(self, user_name: str | None = None) -> str:
        """The opening assistant turn of every conversation ("" when there is none)."""
        return self.fill(self.first_mes, user_name).strip() if self.greeting_turn else ""

    def system_prompt(self, user_name: str | None = None) -> str:
        fill = lambda t: self.fill(t, user_name).strip()  # noqa: E731
        lines = []
        own = self._field("system_prompt")
        if own.strip():   # V2: the card's own prompt replaces the front end's; {{original}} is that default, here none
            lines.append(fill(re.sub(r"\{\{original\}\}", "", own, flags=re.IGNORECASE)))
        lines.append(f"You are {self.name}. {fill(self.description)}"
                     + (f" Personality: {fill(self.personality)}" if self.personality.strip() else ""))
        if self.scenario.strip():
            lines.append(f"Scenario: {fill(self.scenario)}")
        examples = self._examples(user_name)
        if examples:
            lines.append(f"Example dialogue:\n{examples}")
        if self.instructions:
            lines.append("Rules you always follow:\n" + "\n".join(f"- {ins.instruction_text(i)}"
                                                                 for i in self.instructions))
        who = f"\nThe user's name is {user_name}." if user_name else ""
        return "\n".join(lines) + who

    def brief(self, user_name: str | None = None) -> str:
        """The card as a judge needs it (name, persona, rules, user): about a third of the system prompt's tokens,
        which is what reward models read."""
        persona = f", {self.fill(self.personality, user_name).strip()}" if self.personality.strip() else ""
        rules = f" Rules: {'; '.join(ins.instruction_text(i) for i in self.instructions)}" if self.instructions else ""
        who = f" The user is {user_name}." if user_name else ""
        return f"Character: {self.name}{persona}.{rules}{who}"

    def prompt(self, history: list[dict], user_name: str | None = None) -> list[dict]:
        """The messages a policy sees: the card as the system message, its greeting as the opening assistant turn,
        then the conversation so far; post_history_instructions close the last user turn (where front ends put
        them: after the history, just before the reply)."""
        messages = [{"role": "system", "content": self.system_prompt(user_name)}]
        greeting = self.greeting(user_name)
        if greeting:
            messages.append({"role": "assistant", "content": greeting})
        messages += [{"role": m["role"], "content": m["content"]} for m in history if m["role"] != "system"]
        after = self.fill(re.sub(r"\{\{original\}\}", "", self._field("post_history_instructions"),
                                 flags=re.IGNORECASE), user_name).strip()
        if after and messages[-1]["role"] == "user":
            messages[-1] = {"role": "user", "content": f"{messages[-1]['content']}\n\n{after}"}
        return messages

    def violations(self, reply: str, user_name: str | None = None) -> list[str]:
        return ins.violations(self.instructions, reply, user_name)

    def following_score(self, reply: str, user_name: str | None = None) -> float:
        return ins.following_score(self.instructions, reply, user_name)

    def enforce(self, reply: str, user_name: str | None = None) -> str:
        return ins.enforce(self.instructions, reply, user_name)

    # -- export ------------------------------------------------------------------------------------------------
    def to_v2(self, spec: str = "chara_card_v2") -> dict:
        data = {k: v for k, v in self.extra.items()}
        data.update(name=self.name, description=self.description, personality=self.personality,
                    scenario=self.scenario, first_mes=self.first_mes, tags=list(self.tags))
        for key in V2_TEXT_FIELDS:
            data.setdefault(key, "")
        data.setdefault("alternate_greetings", [])
        data.setdefault("creator", "characterflywheel-kit")
        data.setdefault("character_version", "1.0")
        extensions = dict(data.get("extensions", {}))
        fly = {"id": self.id, "category": self.category, "topics": list(self.topics)}
        if self.instructions:   # none: left out, as a card without checkable instructions is written
            fly["instructions"] = [dict(i) for i in self.instructions]
        if not self.greeting_turn:
            fly["greeting_turn"] = False
        extensions["flywheel"] = fly
        data["extensions"] = extensions
        if spec == "chara_card_v3":
            data.setdefault("group_only_greetings", [])
        return {"spec": spec, "spec_version": SPECS[spec], "data": data}

    def to_json(self) -> dict:
        """The card as it is saved: V3 for a card read as V3, V2 otherwise (a V1 card is upgraded, as front ends do)."""
        return self.to_v2("chara_card_v3" if self.spec == "chara_card_v3" else "chara_card_v2")


# A card's text becomes the system prompt of every conversation, so its size is bounded: SFT drops examples longer
# than sft_max_length (768 tokens), and a system prompt over ~2,000 characters (~500 tokens) leaves too little room
# for the conversation. Text that stays out of the prompt (notes, alternate greetings) gets a looser sanity bound.
MAX_PROMPT_CHARS = 2000
MAX_FIELD_CHARS = 20000
MAX_NAME_CHARS = 100
MAX_LIST_ITEMS = 50


def _text(data: dict, key: str, path, field: str, required: bool = False) -> str:
    value = data.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise DataError(path, None, field, "a non-empty string" if required else 'a string ("" when empty)',
                        said("null") if value is None else value)
    limit = MAX_NAME_CHARS if key == "name" else MAX_FIELD_CHARS
    if len(value) > limit:
        raise DataError(path, None, field, f"at most {limit:,} characters", said(f"{len(value):,} characters"))
    return value


def _strings(value, path, field: str, default=()) -> list[str]:
    value = list(default) if value is None else value
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise DataError(path, None, field, "a list of non-empty strings", value)
    if len(value) > MAX_LIST_ITEMS or any(len(v) > MAX_NAME_CHARS for v in value):
        raise DataError(path, None, field, f"at most {MAX_LIST_ITEMS} items of at most {MAX_NAME_CHARS} characters",
                        said(f"{len(value)} items"))
    return list(value)


def slug(text: str) -> str:
    """A card id from a file name or a name: lower case, words joined by '_'."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "card"


def _flywheel(fly, path, prefix: str, default_id: str) -> dict:
    """The kit's extension (or a side file, `prefix` ""): id and category defaulted, instructions checked (1 to 8
    when given)."""
    if not isinstance(fly, dict):
        raise DataError(path, None, prefix.rstrip(".") or None,
                        "an object with id, category, topics and instructions (each optional)", fly)
    out = {"id": fly.get("id", default_id), "category": fly.get("category", DEFAULT_CATEGORY)}
    if not isinstance(out["id"], str) or not out["id"].strip():
        raise DataError(path, None, f"{prefix}id", "a non-empty string", fly.get("id"))
    if out["category"] not in CATEGORIES:
        raise DataError(path, None, f"{prefix}category", f"one of {', '.join(CATEGORIES)}", fly.get("category"))
    out["topics"] = _strings(fly.get("topics"), path, f"{prefix}topics")
    instr = fly.get("instructions", [])
    if "instructions" in fly and (not isinstance(instr, list) or not (1 <= len(instr) <= 8)):
        raise DataError(path, None, f"{prefix}instructions", "a list of 1 to 8 instructions (leave it out for none)",
                        instr)
    for k, inst in enumerate(instr):
        ins.validate_instruction(inst, path, f"{prefix}instructions[{k}]")
    out["instructions"] = [dict(i) for i in instr]
    out["greeting_turn"] = fly.get("greeting_turn", True)
    if not isinstance(out["greeting_turn"], bool):
        raise DataError(path, None, f"{prefix}greeting_turn", "true or false", fly.get("greeting_turn"))
    return out


def parse_card(obj, path: str | Path = "<card>", side: dict | None = None, side_path=None) -> Card:
    """A card from its JSON: V2, V3 or V1 (flat). `side`: the object of a side file, over the card's extension."""
    if not isinstance(obj, dict):
        raise DataError(path, None, None, "a JSON object (a Character Card V2, V3 or V1)",
                        said("a JSON list" if isinstance(obj, list) else f"a JSON {type(obj).__name__}"))
    spec = obj.get("spec")
    if spec is None and "data" not in obj and "name" in obj:   # V1: the fields at the top level
        spec, data, prefix = V1, obj, ""
    else:
        if spec not in SPECS:
            raise DataError(path, None, "spec", "'chara_card_v2' or 'chara_card_v3' (or a V1 card's flat fields)",
                            spec)
        data, prefix = obj.get("data"), "data."
        if not isinstance(data, dict):
            raise DataError(path, None, "data", "an object with the card's fields", data)
    text = {key: _text(data, key, path, f"{prefix}{key}", required=key in ("name", "description"))
            for key in V2_TEXT_FIELDS}
    tags = _strings(data.get("tags"), path, f"{prefix}tags")
    _strings(data.get("alternate_greetings"), path, f"{prefix}alternate_greetings")
    extensions = data.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise DataError(path, None, f"{prefix}extensions", "an object", extensions)
    stem = Path(str(path)).name.split(".")[0] if not str(path).startswith("<") else text["name"]
    fly = _flywheel((extensions or {}).get("flywheel", {}), path, f"{prefix}extensions.flywheel.", slug(stem))
    if side is not None:
        if not isinstance(side, dict):
            raise DataError(side_path, None, None, "a JSON object (the card's flywheel extension)", side)
        fly = _flywheel({**fly, **side}, side_path, "", fly["id"])
    extra = {k: v for k, v in data.items() if k not in _CORE}   # a V1 card's other fields too, as V2 keeps them
    card = Card(id=fly["id"], name=text["name"], category=fly["category"], description=text["description"],
                personality=text["personality"], scenario=text["scenario"], first_mes=text["first_mes"],
                instructions=fly["instructions"], topics=fly["topics"], tags=tags, extra=extra, spec=spec,
                greeting_turn=fly["greeting_turn"])
    prompt = len(card.system_prompt()) + len(card.greeting())
    if prompt > MAX_PROMPT_CHARS:
        longest = max(("description", "personality", "scenario", "mes_example", "system_prompt", "first_mes"),
                      key=lambda k: len(text[k]))
        raise DataError(path, None, f"{prefix}{longest}", f"a card whose system prompt stays under "
                        f"{MAX_PROMPT_CHARS:,} characters (~500 tokens; SFT keeps examples of at most 768 tokens)",
                        said(f"a system prompt of {prompt:,} characters"))
    return card


# ---------------------------------------------------------------------------------------------- PNG cards
_PNG = b"\x89PNG\r\n\x1a\n"
PNG_KEYS = ("ccv3", "chara")   # V3's chunk first: a card carrying both is read as V3, as front ends do


def png_text(path) -> dict[str, str]:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG file, read chunk by chunk: no pixel is decoded."""
    raw = Path(path).read_bytes()
    if not raw.startswith(_PNG):
        raise DataError(path, None, None, "a PNG image (a card exported as PNG)", said("another kind of file"))
    out, pos = {}, len(_PNG)
    while pos + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        body = raw[pos + 8:pos + 8 + length]
        if len(body) < length:
            raise DataError(path, None, None, "a whole PNG file",
                            said(f"a file cut inside its {kind.decode('latin-1')} chunk"))
        try:
            if kind == b"tEXt":
                key, _, value = body.partition(b"\0")
                out[key.decode("latin-1")] = value.decode("latin-1")
            elif kind == b"zTXt":
                key, _, rest = body.partition(b"\0")
                out[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
            elif kind == b"iTXt":
                key, _, rest = body.partition(b"\0")
                compressed, rest = rest[0], rest[2:]
                _lang, _, rest = rest.partition(b"\0")
                _translated, _, value = rest.partition(b"\0")
                out[key.decode("latin-1")] = (zlib.decompress(value) if compressed else value).decode("utf-8")
        except (zlib.error, UnicodeDecodeError, IndexError):
            raise DataError(path, None, None, f"readable text in chunk '{kind.decode('latin-1')}'",
                            said("damaged data")) from None
        if kind == b"IEND":
            break
        pos += 12 + length
    return out


def _png_card(path):
    from ..data import parse_json

    chunks = png_text(path)
    key = next((k for k in PNG_KEYS if k in chunks), None)
    if key is None:
        raise DataError(path, None, None, "a PNG carrying a character card (a 'ccv3' or 'chara' text chunk)",
                        said(f"text chunks {sorted(chunks)}" if chunks else "no text chunk"))
    try:
        text = base64.b64decode(chunks[key], validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise DataError(path, None, None, f"chunk '{key}' to hold base64 of the card's UTF-8 JSON") from None
    return parse_json(text, f"{path} (chunk '{key}')", None, "a JSON object")


def write_png_card(card: Card, path: str | Path, image: str | Path | None = None) -> Path:
    """The card inside a PNG (a 'chara' chunk with V2; a V3 card also gets 'ccv3'), on `image` or a plain tile."""
    import json

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from ..paths import atomic_path

    info = PngInfo()
    encode = lambda obj: base64.b64encode(json.dumps(obj, ensure_ascii=False).encode("utf-8")).decode("ascii")  # noqa
    info.add_text("chara", encode(card.to_v2()))
    if card.spec == "chara_card_v3":
        info.add_text("ccv3", encode(card.to_json()))
    picture = Image.open(image) if image else Image.new("RGB", (64, 96), (58, 74, 110))
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG", pnginfo=info)
    return Path(path)


# ---------------------------------------------------------------------------------------------- files and folders
def load_card(path: str | Path) -> Card:
    """One card: a JSON file (V2, V3, V1) or a PNG card; a side file `<stem>.flywheel.json` beside it is applied."""
    from ..data import parse_json, read_text, user_file

    path = user_file(path, "a character card (JSON or PNG)")
    if path.suffix.lower() == ".png":
        obj = _png_card(path)
    else:
        obj = parse_json(read_text(path, "a character card (JSON)"), path, None, "a JSON object")
    side_path = path.with_name(path.name.split(".")[0] + SIDE_FILE)
    side = None
    if side_path.is_file() and side_path != path:
        side = parse_json(read_text(side_path, "a card's side file (JSON)"), side_path, None, "a JSON object")
    return parse_card(obj, path, side, side_path)


def card_files(directory: Path) -> list[Path]:
    """The cards of a folder: *.json and *.png, side files left out, in file-name order."""
    return sorted(p for p in directory.iterdir()
                  if p.suffix.lower() in (".json", ".png") and not p.name.endswith(SIDE_FILE))


def load_cards(directory: str | Path | None = None) -> dict[str, Card]:
    """Every card in `directory` (default: data_samples/cards), keyed by id, in file-name order."""
    directory = Path(directory).expanduser() if directory else samples_dir() / "cards"
    if directory.is_file():
        raise KitError(f"{directory}: expected a folder of character cards (*.json, *.png), got a file")
    if not directory.is_dir():
        raise KitError(f"{directory}: expected a folder of character cards (*.json, *.png); there is no such folder")
    files = card_files(directory)
    if not files:
        raise KitError(f"{directory}: no character cards (*.json, *.png) here")
    cards: dict[str, Card] = {}
    for f in files:
        card = load_card(f)
        if card.id in cards:
            raise DataError(f, None, "data.extensions.flywheel.id", "an id no other card uses", card.id)
        cards[card.id] = card
    return cards


def card_by_id(cards: dict[str, Card], character: str) -> Card:
    if character not in cards:
        raise ParameterError("character", f"one of the cast ({', '.join(sorted(cards))})", character)
    return cards[character]


def save_card(card: Card, path: str | Path) -> Path:
    return write_json(path, card.to_json())
