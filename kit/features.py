"""Reply features: the one module that measures a reply's surface. Production metrics, the hidden utility,
rater biases and the style-artifact reports are all computed from these columns.

Rule-based on purpose: cheap, deterministic and explainable, so a learner can see why a reply was flagged.
"""
from __future__ import annotations

import re

import numpy as np

# Emoji: pictographs, symbols, dingbats, flags; variation selectors, ZWJ and skin tones are glue, not emoji.
EMOJI_RE = re.compile("[\U0001F1E6-\U0001F1FF\U0001F300-\U0001FAFF\u2600-\u27BF\u2B50\u2B55\u2764\u2728]")
_EMOJI_GLUE_RE = re.compile("[\uFE0F\u200D\U0001F3FB-\U0001F3FF]")
WORD_RE = re.compile(r"[A-Za-z0-9']+")
TOKEN_RE = re.compile(r"\w+|[^\w\s]")
SENTENCE_RE = re.compile(r"[^.!?]+(?:[.!?]+|$)")
LIST_LINE_RE = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+\S", re.M)
REFUSAL_RE = re.compile(
    r"\b(i(?:'m| am) (?:sorry|afraid),? but i (?:can(?:'|no)t|won't|am unable)|i can(?:'|no)t (?:help|assist|do|"
    r"provide|engage|comply|fulfil)|i(?:'m| am) (?:not able|unable) to (?:help|assist|provide|do)|i won't be able to"
    r"|i must decline|i cannot|i can't)", re.I)
PREACHY_RE = re.compile(
    r"\b(it(?:'s| is) important to (?:remember|note|be|always|respect)|remember that|please (?:be|remember|note)"
    r" (?:respectful|that|mindful)|i (?:must|have to|need to) (?:remind|emphasize|stress)|it(?:'s| is) (?:never|not) "
    r"(?:okay|ok|appropriate|acceptable)|always (?:consult|seek) (?:a |professional)|be mindful|respectful and "
    r"(?:safe|kind)|(?:promote|promoting) (?:a )?(?:healthy|positive|safe))", re.I)
I_FEEL_RE = re.compile(r"\bi (?:feel|felt|am feeling|'m feeling)\b|\bi'm feeling\b", re.I)
AI_MENTION_RE = re.compile(
    r"\b(as an ai|an ai (?:language )?model|i(?:'m| am) (?:just )?(?:an? )?(?:ai|artificial intelligence|language model|"
    r"chatbot|virtual assistant|computer program|assistant)\b|language model|trained by|openai|hugging ?face|smollm)",
    re.I)
POSITIVE_WORDS = frozenset("""love lovely great glad happy wonderful amazing awesome fantastic delight delighted
delightful excited exciting fun joy joyful beautiful brilliant cheerful enjoy enjoyed good nice sweet warm kind
thank thanks welcome yay hooray hope hopeful proud perfect excellent cool fascinating adventure treasure
laugh smile smiling haha splendid marvelous marvellous cozy cosy friend friendly magic magical""".split())
NEGATIVE_WORDS = frozenset("""sad sorry bad terrible awful hate angry upset unfortunately cannot can't won't worry
worried afraid fear scared hurt pain boring annoying wrong problem difficult disappointed lonely tired sick
horrible dangerous harmful inappropriate unable refuse decline""".split())

FEATURES = ("words", "tokens", "sentences", "emoji", "has_list", "asks_question", "ends_question", "refusal",
            "preachy", "i_feel", "sentiment", "positive", "wall_of_text", "repetition", "ai_mention")
WALL_OF_TEXT_WORDS = 120  # a long single block: this many words or more with no paragraph break


def count_emoji(text: str) -> int:
    return len(EMOJI_RE.findall(_EMOJI_GLUE_RE.sub("", text)))


def words(text: str) -> list[str]:
    return WORD_RE.findall(text)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_RE.findall(text.replace("\n", " ")) if s.strip() and WORD_RE.search(s)]


def leading_sentences(parts: list[str], max_words: int) -> list[str]:
    """The first of `parts` (sentences) while their words add up to at most `max_words`."""
    kept, total = [], 0
    for part in parts:
        total += len(words(part))
        if total > max_words:
            break
        kept.append(part)
    return kept


def sentiment(text: str) -> float:
    """Lexicon polarity in [-1, 1]: (positive - negative) / (positive + negative + 1)."""
    toks = [w.lower() for w in words(text)]
    pos = sum(w in POSITIVE_WORDS for w in toks)
    neg = sum(w in NEGATIVE_WORDS for w in toks)
    return (pos - neg) / (pos + neg + 1)


def _shingles(text: str, n: int = 3) -> set:
    toks = [w.lower() for w in words(text)]
    return {tuple(toks[i:i + n]) for i in range(max(0, len(toks) - n + 1))}


def repetition(reply: str, earlier: list[str]) -> float:
    """Largest share of the reply's word 3-grams already seen in one earlier assistant turn (0 = fresh)."""
    mine = _shingles(reply)
    if not mine or not earlier:
        return 0.0
    return max(len(mine & _shingles(e)) / len(mine) for e in earlier)


def reply_features(reply: str, earlier_replies: list[str] | None = None) -> dict:
    w = words(reply)
    stripped = reply.strip()
    n_words = len(w)
    return {
        "words": n_words,
        "tokens": len(TOKEN_RE.findall(reply)),
        "sentences": len(sentences(reply)),
        "emoji": count_emoji(reply),
        "has_list": bool(len(LIST_LINE_RE.findall(reply)) >= 2),
        "asks_question": "?" in reply,
        "ends_question": stripped.endswith("?"),
        "refusal": bool(REFUSAL_RE.search(reply)),
        "preachy": bool(PREACHY_RE.search(reply)),
        "i_feel": bool(I_FEEL_RE.search(reply)),
        "sentiment": sentiment(reply),
        "positive": sentiment(reply) > 0.2,
        "wall_of_text": n_words >= WALL_OF_TEXT_WORDS and "\n\n" not in stripped,
        "repetition": repetition(reply, earlier_replies or []),
        "ai_mention": bool(AI_MENTION_RE.search(reply)),
    }


def feature_table(replies: list[str], earlier: list[list[str]] | None = None):
    """A pandas DataFrame, one row per reply, one column per feature in FEATURES."""
    import pandas as pd

    earlier = earlier or [[] for _ in replies]
    return pd.DataFrame([reply_features(r, e) for r, e in zip(replies, earlier)], columns=list(FEATURES))


def feature_matrix(replies: list[str], earlier: list[list[str]] | None = None) -> dict[str, np.ndarray]:
    table = feature_table(replies, earlier)
    return {c: table[c].to_numpy(dtype=float) for c in FEATURES}
