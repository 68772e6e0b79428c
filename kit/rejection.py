"""Rejection sampling (step 4a of the method): the SFT set, rebuilt every generation from the latest curated
traffic.

The candidates are the ones annotation already generated for its training prompts (kit/annotation.py), so no
reply is generated twice:

* the reply logged in traffic (what the deployed policy said);
* fresh samples from the policies of the pool: the current (deployed) policy, and the base model when the current
  policy is a later one;
* prompted expert rewrites of the logged reply.

Every candidate is scored by the composite reward (notebook 03's pointwise model, plus any user-signal auxiliary
given a weight) and by the card's instruction checkers, which are verifiable rewards. The selection score is the
reward, standardised over the whole candidate table, plus `rs_follow_weight` times the share of the card's rules
the reply follows; the best candidate of each prompt is kept unless it follows fewer than `rs_min_following` of
its rules. Because the prompts come from the newest traffic and most candidates from the current policy, the set
stays near-policy. SFT then trains on the kept replies of every generation so far (`sft_accumulate`): the data,
not the weights, carry the earlier generations forward.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from .errors import KitError
from .privacy import assert_no_pii, redact
from .seeding import sample_in_order


def from_annotation(records: list[dict], max_prompts: int | None = None, seed: int = 0
                    ) -> tuple[list[dict], list[list[dict]]]:
    """Annotation's training prompts with their candidates (gen_<g>/annotation/candidates) -> (items, candidate
    lists of {"reply", "origin"}): all of them, or a seeded sample of `max_prompts` in their original order.
    Candidates were redacted by annotation; they are redacted again here, so nothing identifiable reaches training
    even from a file edited by hand."""
    if max_prompts is not None:
        records = sample_in_order(records, max_prompts, seed, "pick-prompts", "rs")
    items, cands = [], []
    for rec in records:
        items.append({k: v for k, v in rec.items() if k != "candidates"})
        cands.append([{"reply": redact(c["reply"])[0].strip(), "origin": c["origin"]} for c in rec["candidates"]])
    return items, cands


def score_candidates(cards: dict, items: list[dict], cands: list[list[dict]], reward_fn) -> "pd.DataFrame":
    """One row per candidate: item index, origin, reply, composite reward, instruction following, violations.
    `reward_fn(items, replies) -> array` is the composite reward (kit.rewards.composite_reward_fn)."""
    import pandas as pd

    rows = []
    for i, (it, cs) in enumerate(zip(items, cands)):
        card = cards[it["character_id"]]
        for c in cs:
            if not c["reply"]:
                continue
            rows.append({"item": i, "prompt_id": it.get("prompt_id"), "character_id": it["character_id"],
                         "origin": c["origin"], "reply": c["reply"],
                         "following": card.following_score(c["reply"], it.get("user_name")),
                         "violations": len(card.violations(c["reply"], it.get("user_name")))})
    table = pd.DataFrame(rows)
    if table.empty:
        raise KitError("rejection sampling: every candidate came back empty")
    table["reward"] = reward_fn([items[i] for i in table["item"]], table["reply"].tolist())
    return table


def select(table, follow_weight: float = 2.0, min_following: float = 0.0):
    """Mark each prompt's best candidate (`selected`) by z(reward) + follow_weight * following."""
    table = table.copy()
    sd = float(table["reward"].std()) or 1.0
    table["score"] = (table["reward"] - table["reward"].mean()) / sd + follow_weight * table["following"]
    best = table.groupby("item")["score"].idxmax()
    table["selected"] = False
    table.loc[best.to_numpy(), "selected"] = True
    table.loc[table["following"] < min_following - 1e-9, "selected"] = False
    return table


TERMINAL = re.compile(r"[.!?\u2026][\"')\]*\u2019\u201d]*$")


def complete_sentences(text: str, max_words: int | None) -> str:
    """The reply as whole sentences within `max_words`: a candidate the token limit cut off loses its unfinished
    last sentence, and sentences past the budget go. An SFT target that stops mid-word, or runs to the limit,
    teaches the policy to ramble until the limit cuts it (and an end-of-reply rule, like a closing question, is
    then cut too); a whole reply within the budget teaches it to finish. A text with no whole sentence is cut at
    `max_words` words and closed."""
    from .features import leading_sentences, sentences, words

    parts = sentences(text)
    if len(parts) > 1 and not TERMINAL.search(parts[-1].strip()):
        parts = parts[:-1]
    tail = ""                                            # a closing emoji or symbol after the last sentence
    if parts and parts[-1] in text:
        after = text[text.rindex(parts[-1]) + len(parts[-1]):].strip()
        tail = after if after and not words(after) else ""
    if max_words is None:
        return " ".join(parts + [tail] if tail else parts) if parts else text
    kept = leading_sentences(parts, max_words)
    if kept:
        return " ".join(kept + [tail] if tail and len(kept) == len(parts) else kept)
    return " ".join(text.split()[:max_words]).rstrip(",;:-") + "."


def open_end(original: str, target: str, final: str) -> bool:
    """Whether an SFT target stops short of its reply's own end: `target` (complete_sentences of `original`) lost
    words, and no rater's edit changed how `final` ends (a closing question, an emoji, a rule's length limit end a
    reply on purpose). Such a target's end of turn is where the limit stopped the policy, not where the reply ended
    (kit.sft.tokenized leaves it out of the loss when `sft_open_ends` is on)."""
    from .features import words

    return len(words(target)) < len(words(original)) and final.rstrip().endswith(target.rstrip()[-30:])


def target_words(max_new_tokens: int) -> int:
    """The word budget of an SFT target: room, within the generation limit, for the rule edits a rater may add
    (a catchphrase, a closing question). About 1.4 tokens a word for the embedded tokenizer."""
    return max(8, int(max_new_tokens / 1.4) - 6)


def target_budget(cfg) -> int:
    """An SFT target's word budget for a PolicyConfig: `sft_target_words` where set, else target_words."""
    return int(cfg.sft_target_words or target_words(cfg.max_new_tokens))


def sft_records(items: list[dict], table, cards: dict | None = None, max_words: int | None = None) -> list[dict]:
    """The kept candidates as SFT examples: the conversation so far and the reply, conversational form.

    Each kept reply is first cut to whole sentences within `max_words` (complete_sentences). With `cards`, a kept
    reply that still breaks one of its card's rules then goes through the raters' steerability workflow: the
    rule-based edits a rater makes (catchphrase added, emoji added, cut to the sentence limit, AI talk removed;
    kit.world.instructions.enforce). Its origin then ends in "+rater-fix" and `following` is re-measured, so the
    SFT set teaches the card rather than the model's own slips."""
    out = []
    for row in table[table["selected"]].itertuples():
        it = items[row.item]
        reply, origin, following = complete_sentences(row.reply, max_words), row.origin, float(row.following)
        target = reply
        if cards is not None:
            card = cards[it["character_id"]]
            following = float(card.following_score(reply, it.get("user_name")))
            if following < 1.0:
                fixed = card.enforce(reply, it.get("user_name"))
                if fixed.strip() and fixed != reply:
                    reply, origin = fixed, f"{origin}+rater-fix"
                    following = float(card.following_score(fixed, it.get("user_name")))
        out.append({"prompt": [{"role": m["role"], "content": m["content"]} for m in it["history"]
                               if m["role"] != "system"],
                    "completion": [{"role": "assistant", "content": reply}],
                    "character_id": it["character_id"], "user_name": it.get("user_name"),
                    "source": it.get("source", "user"), "prompt_id": it.get("prompt_id"), "origin": origin,
                    "reward": float(row.reward), "following": following,
                    "open_end": open_end(row.reply, target, reply)})
    assert_no_pii(out, "rejection sampling")
    return out


def rewrite_records(pairs: list[dict], cards: dict | None = None, max_words: int | None = None) -> list[dict]:
    """The raters' compliant rewrites from annotation (the chosen side of steerability pairs) as SFT examples, cut
    to whole sentences within `max_words` like the kept candidates (and, with `cards`, the rules re-applied)."""
    out = []
    for p in pairs:
        if p.get("origin") != "steerability-rewrite":
            continue
        original = p["chosen"][0]["content"]
        reply = target = complete_sentences(original, max_words)
        if cards is not None:
            reply = cards[p["character_id"]].enforce(reply, p.get("user_name"))
        out.append({"prompt": p["prompt"], "completion": [{"role": "assistant", "content": reply}],
                    "character_id": p["character_id"], "user_name": p.get("user_name"),
                    "source": p.get("source", "user"), "prompt_id": p.get("prompt_id"), "origin": "rater-rewrite",
                    "reward": float("nan"), "following": float("nan"), "open_end": open_end(original, target, reply)})
    assert_no_pii(out, "rater rewrites")
    return out


def import_sft(path, cards: dict) -> list[dict]:
    """Real conversations (`sft_path` of notebook 04) as SFT examples, one per assistant turn, through the same
    privacy stage as traffic: the contract and the cast checked, unsafe conversations dropped, every field
    redacted, then the final scan. Nothing of the file reaches training verbatim."""
    from .data import load_conversations
    from .privacy import filter_conversations
    from .world.traffic import turns

    kept, report = filter_conversations(load_conversations(path, cards))
    out = [{"prompt": [{"role": m["role"], "content": m["content"]} for m in t["history"] if m["role"] != "system"],
            "completion": [{"role": "assistant", "content": t["reply"]}], "character_id": t["character_id"],
            "user_name": t.get("user_name"), "source": t["source"], "prompt_id": None, "origin": "imported",
            "reward": float("nan"), "following": float("nan")} for t in turns(kept)]
    if not out:
        raise KitError(f"{path}: no conversation left to train on after the safety rules (dropped: "
                       f"{report['dropped']})")
    assert_no_pii(out, str(path))
    return out


def load_saved(run, generation: int) -> tuple[list[dict], "pd.DataFrame"]:
    """Rejection sampling's prompts and scored candidate table as notebook 04 saved them (policy.rs.prompts,
    policy.rs.candidates): what the DPO patch, RL's prompts and RL's reward scale read (notebook 05, kit.launch)."""
    from .data import load_dataset_dir

    items = load_dataset_dir(run.artifact(generation, "policy.rs.prompts", create=False)).to_list()
    table = load_dataset_dir(run.artifact(generation, "policy.rs.candidates", create=False)).to_pandas()
    return items, table


def verifiable_reward_fn(cards: dict, reward_fn, *, follow_weight: float, reward_sd: float):
    """The reward RL optimises: the composite reward in units of its spread over the rejection-sampling candidates
    (`reward_sd`), plus `follow_weight` times the share of the card's rules the reply follows. The rules are
    checked by code, a verifiable reward (RLVR), so the policy cannot win them by pleasing the reward model; the
    reward model covers what no rule can check. Rejection sampling selects with the same sum."""
    def fn(items, replies):
        base = np.asarray(reward_fn(items, replies), dtype=float) / (reward_sd or 1.0)
        following = np.array([cards[it["character_id"]].following_score(r, it.get("user_name"))
                              for it, r in zip(items, replies)])
        return base + follow_weight * following

    return fn


def report(table) -> dict:
    """What rejection sampling did: per origin, candidates, share kept, mean reward and following."""
    by = table.groupby("origin").agg(candidates=("reply", "size"), kept=("selected", "sum"),
                                     mean_reward=("reward", "mean"), mean_following=("following", "mean"))
    kept = table[table["selected"]]
    return {"prompts": int(table["item"].nunique()), "candidates": int(len(table)), "kept": int(len(kept)),
            "kept_mean_reward": float(kept["reward"].mean()) if len(kept) else None,
            "all_mean_reward": float(table["reward"].mean()),
            "kept_following": float(kept["following"].mean()) if len(kept) else None,
            "all_following": float(table["following"].mean()),
            "kept_violation_rate": float((kept["violations"] > 0).mean()) if len(kept) else None,
            "all_violation_rate": float((table["violations"] > 0).mean()),
            "by_origin": {k: {c: float(v) for c, v in row.items()} for k, row in by.iterrows()}}
