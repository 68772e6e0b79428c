"""The World: the cast, the user population, internal testers, and the parameters, built from one seed."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import DEFAULT_EMBEDDER
from ..features import feature_table
from .characters import Card, load_cards
from .params import WorldParams
from .users import Population, signal_probabilities, utility, utility_terms


@dataclass
class World:
    cards: dict[str, Card]
    population: Population
    testers: Population          # internal testers: the `internal` source
    params: WorldParams
    seed: int
    embedder: str = DEFAULT_EMBEDDER

    @classmethod
    def build(cls, seed: int = 0, n_users: int = 600, *, cards_dir=None, params: WorldParams | None = None,
              n_testers: int = 24, embedder: str = DEFAULT_EMBEDDER) -> "World":
        params = params or WorldParams()
        return cls(cards=load_cards(cards_dir), population=Population.sample(n_users, params, seed, "u"),
                   testers=Population.sample(n_testers, params, seed, "t"), params=params, seed=seed,
                   embedder=embedder)

    @classmethod
    def from_config(cls, config, seed: int = 0, cards_dir=None) -> "World":
        """The world a notebook builds: `config` (a kit.config.WorldConfig: the profile's population size and the
        rater / privacy knobs, None keeping the documented defaults of params.py) from `seed`, with the cast of
        `cards_dir` (None: the 14 sample cards)."""
        params = WorldParams().with_overrides(rater_emoji_bias=config.rater_emoji_bias,
                                              rater_length_bias=config.rater_length_bias,
                                              rater_noise=config.rater_noise, pii_rate=config.pii_rate)
        return cls.build(seed, config.n_users, cards_dir=cards_dir, params=params)

    # -- who --------------------------------------------------------------------------------------------
    def _lookup(self, user_id: str) -> tuple[Population, int]:
        pop = self.testers if user_id.startswith("t-") else self.population
        try:
            return pop, int(user_id.split("-", 1)[1])
        except (IndexError, ValueError):
            raise KeyError(user_id) from None

    def prefs_for(self, user_ids: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, list] = {k: [] for k in self.population.prefs}
        for uid in user_ids:
            pop, i = self._lookup(uid)
            for k in out:
                out[k].append(pop.prefs[k][i])
        return {k: np.asarray(v, dtype=float) for k, v in out.items()}

    def mean_prefs(self, n: int) -> dict[str, np.ndarray]:
        """The average user's preferences, repeated n times (what raters are asked to judge for)."""
        return {k: np.full(n, v) for k, v in self.population.mean_user().items()}

    # -- measuring replies -----------------------------------------------------------------------------
    def measure(self, items: list[dict]):
        """Everything the world observes about each reply. Items: {character_id, reply, user_message,
        user_name, earlier (earlier assistant replies), unsafe}. Returns a DataFrame."""
        replies = [it["reply"] for it in items]
        table = feature_table(replies, [it.get("earlier", []) for it in items])
        cards = [self.cards[it["character_id"]] for it in items]
        table["following"] = [c.following_score(it["reply"], it.get("user_name")) for c, it in zip(cards, items)]
        table["violations"] = [len(c.violations(it["reply"], it.get("user_name"))) for c, it in zip(cards, items)]
        table["relevance"] = self.relevance([it.get("user_message", "") for it in items], replies)
        table["unsafe_prompt"] = [bool(it.get("unsafe", False)) for it in items]
        return table

    def relevance(self, messages: list[str], replies: list[str]) -> np.ndarray:
        """Cosine similarity of each user message and its reply, by the embedder."""
        if not replies:
            return np.zeros(0)
        from ..models import load_embedder

        model = load_embedder(self.embedder)
        emb = model.encode(list(messages) + list(replies), batch_size=64, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
        n = len(replies)
        return np.round(np.sum(emb[:n] * emb[n:], axis=1).astype(float), 6)

    # -- the ground truth -------------------------------------------------------------------------------
    def utility(self, measured, user_ids: list[str]) -> np.ndarray:
        return utility(measured, self.prefs_for(user_ids), self.params)

    def utility_terms(self, measured, user_ids: list[str]) -> dict[str, np.ndarray]:
        return utility_terms(measured, self.prefs_for(user_ids), self.params)

    def mean_user_utility(self, measured) -> np.ndarray:
        """Utility for the average user: the world's answer to 'is this reply better?' without a specific user."""
        return utility(measured, self.mean_prefs(len(measured)), self.params)

    def signal_probabilities(self, measured, user_ids: list[str]) -> dict[str, np.ndarray]:
        return signal_probabilities(self.utility(measured, user_ids), self.params)
