"""Character cards: Character Card V2 JSON in and out, with the kit's checkable instructions.

Our additions live where the V2 spec puts application data, so other V2 tools keep them::

    {"spec": "chara_card_v2", "spec_version": "2.0",
     "data": {"name": ..., "description": ..., "personality": ..., "scenario": ..., "first_mes": ...,
              "tags": [...], "extensions": {"flywheel": {"id": "captain_rook", "category": "fictional_figure",
                                                         "topics": [...], "instructions": [{"type": ...}, ...]}}}}
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError, KitError, said
from ..paths import samples_dir, write_json
from . import instructions as ins

CATEGORIES = ("companion", "game_master", "tutor", "fictional_figure", "coach", "lifestyle")
V2_TEXT_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example", "creator_notes",
                  "system_prompt", "post_history_instructions")


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
    extra: dict = field(default_factory=dict)   # other V2 fields, kept for a faithful export

    def system_prompt(self, user_name: str | None = None) -> str:
        rules = "\n".join(f"- {ins.instruction_text(i)}" for i in self.instructions)
        who = f"\nThe user's name is {user_name}." if user_name else ""
        return (f"You are {self.name}. {self.description} Personality: {self.personality}\n"
                f"Scenario: {self.scenario}\nRules you always follow:\n{rules}{who}")

    def brief(self, user_name: str | None = None) -> str:
        """The card as a judge needs it (name, persona, rules, user): about a third of the system prompt's tokens,
        which is what reward models read."""
        rules = "; ".join(ins.instruction_text(i) for i in self.instructions)
        who = f" The user is {user_name}." if user_name else ""
        return f"Character: {self.name}, {self.personality}. Rules: {rules}{who}"

    def prompt(self, history: list[dict], user_name: str | None = None) -> list[dict]:
        """The messages a policy sees: the card as the system message, then the conversation so far."""
        return [{"role": "system", "content": self.system_prompt(user_name)}] + [
            {"role": m["role"], "content": m["content"]} for m in history if m["role"] != "system"]

    def violations(self, reply: str, user_name: str | None = None) -> list[str]:
        return ins.violations(self.instructions, reply, user_name)

    def following_score(self, reply: str, user_name: str | None = None) -> float:
        return ins.following_score(self.instructions, reply, user_name)

    def enforce(self, reply: str, user_name: str | None = None) -> str:
        return ins.enforce(self.instructions, reply, user_name)

    def to_v2(self) -> dict:
        data = {k: v for k, v in self.extra.items()}
        data.update(name=self.name, description=self.description, personality=self.personality,
                    scenario=self.scenario, first_mes=self.first_mes, tags=list(self.tags))
        for key in V2_TEXT_FIELDS:
            data.setdefault(key, "")
        data.setdefault("alternate_greetings", [])
        data.setdefault("creator", "characterflywheel-kit")
        data.setdefault("character_version", "1.0")
        extensions = dict(data.get("extensions", {}))
        extensions["flywheel"] = {"id": self.id, "category": self.category, "topics": list(self.topics),
                                  "instructions": [dict(i) for i in self.instructions]}
        data["extensions"] = extensions
        return {"spec": "chara_card_v2", "spec_version": "2.0", "data": data}


# A card's text becomes the system prompt of every conversation, so its size is bounded: SFT drops examples longer
# than sft_max_length (768 tokens), and a system prompt over ~2,000 characters (~500 tokens) leaves too little room
# for the conversation. Text that stays out of the prompt (greetings, notes) gets a looser sanity bound.
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


def card_from_v2(obj: dict, path: str | Path = "<card>") -> Card:
    if not isinstance(obj, dict):
        raise DataError(path, None, None, "a JSON object (a Character Card V2)",
                        said("a JSON list" if isinstance(obj, list) else f"a JSON {type(obj).__name__}"))
    if obj.get("spec") != "chara_card_v2":
        raise DataError(path, None, "spec", "'chara_card_v2' (a Character Card V2 JSON)", obj.get("spec"))
    data = obj.get("data")
    if not isinstance(data, dict):
        raise DataError(path, None, "data", "an object with the card's fields", data)
    text = {key: _text(data, key, path, f"data.{key}", required=key in ("name", "description"))
            for key in V2_TEXT_FIELDS}
    tags = _strings(data.get("tags"), path, "data.tags")
    _strings(data.get("alternate_greetings"), path, "data.alternate_greetings")
    extensions = data.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise DataError(path, None, "data.extensions", "an object", extensions)
    fly = (extensions or {}).get("flywheel")
    if not isinstance(fly, dict):
        raise DataError(path, None, "data.extensions.flywheel", "an object with id, category and instructions")
    if not isinstance(fly.get("id"), str) or not fly["id"].strip():
        raise DataError(path, None, "data.extensions.flywheel.id", "a non-empty string", fly.get("id"))
    if fly.get("category") not in CATEGORIES:
        raise DataError(path, None, "data.extensions.flywheel.category", f"one of {', '.join(CATEGORIES)}",
                        fly.get("category"))
    topics = _strings(fly.get("topics"), path, "data.extensions.flywheel.topics")
    instr = fly.get("instructions")
    if not isinstance(instr, list) or not (1 <= len(instr) <= 8):
        raise DataError(path, None, "data.extensions.flywheel.instructions", "a list of 1 to 8 instructions", instr)
    for k, inst in enumerate(instr):
        ins.validate_instruction(inst, path, f"data.extensions.flywheel.instructions[{k}]")
    extra = {k: v for k, v in data.items() if k not in ("name", "description", "personality", "scenario",
                                                          "first_mes", "tags")}
    card = Card(id=fly["id"], name=text["name"], category=fly["category"], description=text["description"],
                personality=text["personality"], scenario=text["scenario"], first_mes=text["first_mes"],
                instructions=[dict(i) for i in instr], topics=topics, tags=tags, extra=extra)
    prompt = len(card.system_prompt())
    if prompt > MAX_PROMPT_CHARS:
        longest = max(("description", "personality", "scenario"), key=lambda k: len(text[k]))
        raise DataError(path, None, f"data.{longest}", f"a card whose system prompt stays under "
                        f"{MAX_PROMPT_CHARS:,} characters (~500 tokens; SFT keeps examples of at most 768 tokens)",
                        said(f"a system prompt of {prompt:,} characters"))
    return card


def load_card(path: str | Path) -> Card:
    from ..data import parse_json, read_text

    return card_from_v2(parse_json(read_text(path, "a character card (JSON)"), path, None, "a JSON object"), path)


def load_cards(directory: str | Path | None = None) -> dict[str, Card]:
    """Every *.json card in `directory` (default: data_samples/cards), keyed by id, in file-name order."""
    directory = Path(directory) if directory else samples_dir() / "cards"
    if directory.is_file():
        raise KitError(f"{directory}: expected a folder of character cards (*.json), got a file")
    if not directory.is_dir():
        raise KitError(f"{directory}: expected a folder of character cards (*.json); there is no such folder")
    files = sorted(directory.glob("*.json"))
    if not files:
        raise KitError(f"{directory}: no character cards (*.json) here")
    cards: dict[str, Card] = {}
    for f in files:
        card = load_card(f)
        if card.id in cards:
            raise DataError(f, None, "data.extensions.flywheel.id", "an id no other card uses", card.id)
        cards[card.id] = card
    return cards


def save_card(card: Card, path: str | Path) -> Path:
    return write_json(path, card.to_v2())
