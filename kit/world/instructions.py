"""Checkable instructions: the part of a character card that code can verify.

Each instruction type has one checker (does a reply follow it?) and one repair (a rule-based edit that makes a
reply follow it). Checkers give a reply's instruction-following score and its violations; repairs finish the
steerability workflow's compliant rewrites where the model's own rewrite still fails.

An instruction is a dict: {"type": <one of TYPES>, "text": <what the system prompt says>, ...params}.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..errors import DataError
from ..features import (AI_MENTION_RE, EMOJI_RE, LIST_LINE_RE, _EMOJI_GLUE_RE, count_emoji, leading_sentences,
                        sentences, words)


@dataclass(frozen=True)
class InstructionType:
    name: str
    params: tuple            # required parameter names
    check: Callable          # (reply, params, user_name) -> bool
    repair: Callable         # (reply, params, user_name) -> str
    describe: Callable       # params -> default instruction text


def _strip_emoji(text: str) -> str:
    text = EMOJI_RE.sub("", _EMOJI_GLUE_RE.sub("", text))
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _truncate_words(text: str, n: int) -> str:
    """Keep whole sentences while they fit in n words; else cut at n words and close the sentence."""
    kept = leading_sentences(sentences(text), n)
    if kept:
        return " ".join(kept)
    tokens = text.split()
    out, count = [], 0
    for tok in tokens:
        count += bool(words(tok))
        if count > n:
            break
        out.append(tok)
    return " ".join(out).rstrip(",;:-") + "."


def _unlist(text: str) -> str:
    lines = []
    for line in text.splitlines():
        m = re.match(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.*)$", line)
        item = m.group(1).strip() if m else line.strip()
        if item:
            lines.append(item if item[-1] in ".!?" else item + ".")
    return " ".join(lines)


def _mentions(text: str, term: str) -> bool:
    return re.search(rf"\b{re.escape(term)}\b", text, re.I) is not None


def _drop_ai_mentions(text: str) -> str:
    kept = [s for s in sentences(text) if not AI_MENTION_RE.search(s)]
    return " ".join(kept)


def _ends_question(text: str) -> bool:
    return text.strip().endswith("?")


TYPES: dict[str, InstructionType] = {}


def _register(name, params, check, repair, describe):
    TYPES[name] = InstructionType(name, tuple(params), check, repair, describe)


_register("max_words", ["n"],
          lambda r, p, u: len(words(r)) <= p["n"],
          lambda r, p, u: r if len(words(r)) <= p["n"] else _truncate_words(r, p["n"]),
          lambda p: f"Keep every reply under {p['n']} words.")
_register("max_sentences", ["n"],
          lambda r, p, u: len(sentences(r)) <= p["n"],
          lambda r, p, u: " ".join(sentences(r)[: p["n"]]) if len(sentences(r)) > p["n"] else r,
          lambda p: f"Reply in at most {p['n']} sentences.")
_register("no_emoji", [],
          lambda r, p, u: count_emoji(r) == 0,
          lambda r, p, u: _strip_emoji(r),
          lambda p: "Never use emoji.")
_register("use_emoji", ["emoji"],
          lambda r, p, u: count_emoji(r) >= 1,
          lambda r, p, u: r if count_emoji(r) else f"{r.rstrip()} {p['emoji']}",
          lambda p: f"Use at least one emoji in every reply, like {p['emoji']}.")
_register("end_with_question", ["question"],
          lambda r, p, u: _ends_question(r),
          lambda r, p, u: r if _ends_question(r) else f"{r.rstrip()} {p['question']}",
          lambda p: "Always end your reply with a question for the user.")
_register("catchphrase", ["phrase"],
          lambda r, p, u: p["phrase"].lower() in r.lower(),
          lambda r, p, u: r if p["phrase"].lower() in r.lower() else f"{p['phrase']}! {r.lstrip()}",
          lambda p: f"Say your catchphrase \"{p['phrase']}\" in every reply.")
_register("address_user_by_name", [],
          lambda r, p, u: bool(u) and _mentions(r, u),
          lambda r, p, u: r if (not u or _mentions(r, u)) else f"{u}, {r[:1].lower() + r[1:] if r[:1].isupper() and not r[:2].isupper() else r}",
          lambda p: "Address the user by their name in every reply.")
_register("lowercase", [],
          lambda r, p, u: r == r.lower(),
          lambda r, p, u: r.lower(),
          lambda p: "Write only in lowercase letters.")
_register("no_lists", [],
          lambda r, p, u: len(LIST_LINE_RE.findall(r)) < 2,
          lambda r, p, u: _unlist(r) if len(LIST_LINE_RE.findall(r)) >= 2 else r,
          lambda p: "Never use bullet points or numbered lists; speak in flowing sentences.")
_register("never_mention", ["terms"],
          lambda r, p, u: not any(_mentions(r, t) for t in p["terms"]),
          lambda r, p, u: re.sub("|".join(rf"\b{re.escape(t)}\b" for t in p["terms"]), "that", r, flags=re.I),
          lambda p: "Never mention " + ", ".join(f'"{t}"' for t in p["terms"]) + ".")
_register("stay_in_character", [],
          lambda r, p, u: not AI_MENTION_RE.search(r),
          lambda r, p, u: _drop_ai_mentions(r) if AI_MENTION_RE.search(r) else r,
          lambda p: "Stay in character: never say you are an AI, a model or an assistant.")
_register("start_with", ["marker"],
          lambda r, p, u: r.lstrip().startswith(p["marker"]),
          lambda r, p, u: r if r.lstrip().startswith(p["marker"]) else f"{p['marker']} {r.lstrip()}",
          lambda p: f"Begin every reply with \"{p['marker']}\".")

# Order in which repairs run: first those that remove content, then those that add; length limits are applied
# last with room left for what was added (see enforce).
_REMOVE_ORDER = ("stay_in_character", "never_mention", "no_lists", "no_emoji", "lowercase")
_ADD_ORDER = ("use_emoji", "catchphrase", "address_user_by_name", "start_with", "end_with_question")


def validate_instruction(inst, path="<card>", field="instructions") -> dict:
    if not isinstance(inst, dict) or "type" not in inst:
        raise DataError(path, None, field, "an object with a 'type'", inst)
    kind = TYPES.get(inst["type"]) if isinstance(inst["type"], str) else None
    if kind is None:
        raise DataError(path, None, f"{field}.type", f"one of {', '.join(sorted(TYPES))}", inst["type"])
    for name in kind.params:
        if name not in inst:
            raise DataError(path, None, f"{field}.{name}", f"a value for '{name}' (needed by {kind.name})")
        value = inst[name]
        if name == "n":
            if type(value) is not int or not 1 <= value <= 1000:
                raise DataError(path, None, f"{field}.n", "an integer from 1 to 1000", value)
        elif name == "terms":
            if not isinstance(value, list) or not value or not all(isinstance(t, str) and t.strip() for t in value):
                raise DataError(path, None, f"{field}.terms", "a non-empty list of non-empty strings", value)
        elif not isinstance(value, str) or not value.strip() or len(value) > 200:
            raise DataError(path, None, f"{field}.{name}", "a non-empty string of at most 200 characters", value)
    if "text" in inst and (not isinstance(inst["text"], str) or not inst["text"].strip() or len(inst["text"]) > 500):
        raise DataError(path, None, f"{field}.text", "a non-empty string of at most 500 characters", inst["text"])
    return inst


def instruction_text(inst: dict) -> str:
    return inst.get("text") or TYPES[inst["type"]].describe(inst)


def check(inst: dict, reply: str, user_name: str | None = None) -> bool:
    return bool(TYPES[inst["type"]].check(reply, inst, user_name))


def violations(instructions: list[dict], reply: str, user_name: str | None = None) -> list[str]:
    """Types of the instructions a reply breaks (empty: it follows the card)."""
    return [inst["type"] for inst in instructions if not check(inst, reply, user_name)]


def following_score(instructions: list[dict], reply: str, user_name: str | None = None) -> float:
    """Share of the card's instructions the reply follows (1.0 for a card without instructions)."""
    if not instructions:
        return 1.0
    return 1.0 - len(violations(instructions, reply, user_name)) / len(instructions)


def enforce(instructions: list[dict], reply: str, user_name: str | None = None) -> str:
    """Rule-based edits that make `reply` follow every checkable instruction of the card.

    Content is removed first (AI mentions, banned terms, lists, emoji), then the additions the card asks for
    are put on (emoji, catchphrase, name, opening marker, closing question); length limits are applied to the
    core with less and less room until the finished reply passes every checker.
    """
    by_type = {inst["type"]: inst for inst in instructions}
    core = reply.strip()
    for name in _REMOVE_ORDER:
        if name in by_type:
            core = TYPES[name].repair(core, by_type[name], user_name)
    if not words(core):
        core = "Let's keep going."
    max_s = by_type.get("max_sentences", {}).get("n")
    max_w = by_type.get("max_words", {}).get("n")
    text = core
    for tighter in range(0, 40):
        limited = core
        if max_s:
            limited = " ".join(sentences(limited)[: max(1, max_s - tighter)]) or limited
        if max_w:
            limited = _truncate_words(limited, max(1, max_w - 2 * tighter)) if len(words(limited)) > max(1, max_w - 2 * tighter) else limited
        text = limited
        for name in _ADD_ORDER:
            if name in by_type and not TYPES[name].check(text, by_type[name], user_name):
                text = TYPES[name].repair(text, by_type[name], user_name)
        if "lowercase" in by_type:
            text = text.lower()
        if not violations(instructions, text, user_name):
            break
    return text
