"""`python -m kit samples`: regenerate data_samples/ with a fixed seed.

What it writes: cards/ (the cast, re-exported as Character Card V2), conversations.jsonl (raw world traffic with
the base model, fake personal data included, the world's hidden truth under "hidden"), preferences.jsonl
(pairs ranked by a panel of simulated raters, with their agreement).
"""
from __future__ import annotations

from pathlib import Path

from .config import DEFAULT_MODEL
from .data import write_jsonl
from .errors import ParameterError
from .paths import samples_dir

SAMPLE_SIZES = dict(n_users=300, n_sessions=150, n_internal_sessions=50, max_turns=3, max_new_tokens=64,
                    n_pairs=150, n_raters=5)


def make_samples(out: str | Path | None = None, seed: int = 0, model_name: str = DEFAULT_MODEL) -> Path:
    from .sampling import Policy
    from .world.characters import load_cards, save_card
    from .world.traffic import collect_traffic
    from .world.world import World
    from .annotation import rate_alternatives

    out = Path(out) if out else samples_dir()
    if out.exists() and not out.is_dir():   # checked before the model loads
        raise ParameterError("out", "a folder to write the samples in, not a file", str(out))
    if type(seed) is not int or seed < 0:
        raise ParameterError("seed", "an integer >= 0", seed)
    cards = load_cards(samples_dir() / "cards")
    for card in cards.values():
        save_card(card, out / "cards" / f"{card.id}.json")
    s = SAMPLE_SIZES
    world = World.build(seed, s["n_users"], cards_dir=out / "cards")
    policy = Policy.load(model_name, name="base", seed=seed)
    policy.max_new_tokens = s["max_new_tokens"]
    records = collect_traffic(world, policy, n_sessions=s["n_sessions"], n_internal_sessions=s["n_internal_sessions"],
                              max_turns=s["max_turns"], seed=seed)
    write_jsonl(out / "conversations.jsonl", records)
    pairs = rate_alternatives(world, policy, records, n_pairs=s["n_pairs"], n_raters=s["n_raters"], seed=seed)
    write_jsonl(out / "preferences.jsonl", pairs)
    print(f"samples: {len(cards)} cards, {len(records)} conversations, {len(pairs)} preference pairs -> {out}")
    return out
