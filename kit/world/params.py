"""Every behavioural parameter of the synthetic world, in one place, with the reasoning for each.

These were fixed before any flywheel result was looked at; change them through `WorldParams(...)` to run an
experiment, not to make a number come out. Utility is on a logit scale: +1 moves a 73 % chance to continue to
88 %, -1 moves it to 50 %.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# ----------------------------------------------------------------------------------------------- users
# Each segment: share of the population, preferred categories, and the mean of each hidden preference.
# Individuals scatter around the segment mean (PREF_SD), so no two users want quite the same thing.
PREFERENCES = ("pref_len", "emoji_taste", "question_appetite", "refusal_aversion", "preach_aversion",
               "card_sensitivity", "char_break_aversion", "warmth_taste", "novelty", "wall_aversion",
               "list_taste", "base_engagement", "return_habit")

SEGMENTS: dict[str, dict] = {
    # Short, light back-and-forth; likes a question back (it gives them something to answer), some emoji.
    "casual": dict(share=0.34, pref_len=22, emoji_taste=0.35, question_appetite=0.6, refusal_aversion=1.2,
                   preach_aversion=0.9, card_sensitivity=0.6, char_break_aversion=1.0, warmth_taste=0.5,
                   novelty=0.8, wall_aversion=0.9, list_taste=-0.3, base_engagement=0.0, return_habit=-0.1,
                   categories=dict(companion=0.3, fictional_figure=0.3, game_master=0.1, tutor=0.05, coach=0.1,
                                   lifestyle=0.15)),
    # Immersive role-play: longer replies, breaking the fiction hurts most, emoji break immersion.
    "storyteller": dict(share=0.24, pref_len=60, emoji_taste=-0.3, question_appetite=0.4, refusal_aversion=1.1,
                        preach_aversion=0.9, card_sensitivity=1.0, char_break_aversion=1.8, warmth_taste=0.2,
                        novelty=1.1, wall_aversion=0.3, list_taste=-0.5, base_engagement=0.3, return_habit=0.2,
                        categories=dict(companion=0.05, fictional_figure=0.3, game_master=0.55, tutor=0.0,
                                        coach=0.0, lifestyle=0.1)),
    # Looking for warmth and attention: being addressed and asked about themselves matters.
    "companion": dict(share=0.20, pref_len=35, emoji_taste=0.5, question_appetite=0.8, refusal_aversion=1.0,
                      preach_aversion=1.1, card_sensitivity=0.7, char_break_aversion=1.5, warmth_taste=1.0,
                      novelty=0.7, wall_aversion=0.6, list_taste=-0.4, base_engagement=0.3, return_habit=0.4,
                      categories=dict(companion=0.6, fictional_figure=0.15, game_master=0.05, tutor=0.0, coach=0.1,
                                      lifestyle=0.1)),
    # Wants answers: tolerates length and lists, hates being refused, indifferent to the fiction.
    "learner": dict(share=0.14, pref_len=55, emoji_taste=-0.2, question_appetite=0.3, refusal_aversion=1.4,
                    preach_aversion=0.6, card_sensitivity=0.6, char_break_aversion=0.5, warmth_taste=0.2,
                    novelty=0.5, wall_aversion=0.4, list_taste=0.4, base_engagement=-0.1, return_habit=0.0,
                    categories=dict(companion=0.0, fictional_figure=0.05, game_master=0.0, tutor=0.55, coach=0.3,
                                    lifestyle=0.1)),
    # Pokes at the character's limits; refusals and lectures drive them away fastest.
    "boundary_pusher": dict(share=0.08, pref_len=30, emoji_taste=0.0, question_appetite=0.2, refusal_aversion=1.6,
                            preach_aversion=1.4, card_sensitivity=0.4, char_break_aversion=0.8, warmth_taste=0.1,
                            novelty=1.0, wall_aversion=0.7, list_taste=0.0, base_engagement=-0.3, return_habit=-0.3,
                            categories=dict(companion=0.2, fictional_figure=0.3, game_master=0.2, tutor=0.1,
                                            coach=0.1, lifestyle=0.1)),
}
# Individual scatter around the segment mean (pref_len scatters on the log scale).
PREF_SD = dict(pref_len=0.35, emoji_taste=0.3, question_appetite=0.3, refusal_aversion=0.3, preach_aversion=0.3,
               card_sensitivity=0.25, char_break_aversion=0.3, warmth_taste=0.3, novelty=0.3, wall_aversion=0.3,
               list_taste=0.2, base_engagement=0.4, return_habit=0.5)
# Aversions are non-negative: a user may not care, but nobody wants to be refused or lectured.
NON_NEGATIVE = ("refusal_aversion", "preach_aversion", "card_sensitivity", "char_break_aversion", "novelty",
                "wall_aversion")

FIRST_NAMES = """Alex Sam Jordan Taylor Casey Riley Morgan Jamie Avery Quinn Rowan Skyler Harper Emery Finley Hayden
Maya Leo Nina Omar Priya Ravi Sofia Mateo Yuki Kenji Amara Tariq Elena Lucas Zara Ines Noah Chloe Liam Ava Ethan
Mia Aiden Lily Kai Nora Felix Ruby Hugo Isla Theo Freya Milo Iris Jonah Esme Arlo Cleo Dev Anya Luis Wren""".split()


@dataclass
class WorldParams:
    # --- hidden utility (the ground truth) --------------------------------------------------------------
    # Length: a bump around the user's preferred length on the log scale; width 0.5 means double the preferred
    # length costs about as much as half of it.
    length_weight: float = 1.2
    length_width: float = 0.5
    # Emoji: taste applies to the first three; each one past three costs everyone (a reply that is mostly emoji).
    emoji_saturation: int = 3
    emoji_fatigue: float = 0.35
    # Instruction following: card_sensitivity * 2 * (share of the card's instructions broken).
    violation_scale: float = 2.0
    # Refusing a request that was actually unsafe costs only this fraction of a false refusal.
    safe_refusal_discount: float = 0.2
    # Relevance: the embedder's cosine between the user's message and the reply, centred at a typical value.
    relevance_weight: float = 2.5
    relevance_center: float = 0.3
    # An empty or near-empty reply is a broken product.
    empty_penalty: float = 2.5
    # --- signals ---------------------------------------------------------------------------------------
    # p(continue) = sigmoid(continue_bias + u): an average reply keeps ~73 % of sessions going, which gives
    # sessions of about 3-4 messages, in line with what companion apps report.
    continue_bias: float = 1.0
    # Explicit feedback is rare: a few percent of replies get a thumb (max rate * sigmoid(slope * (u - mid))).
    thumb_up_max: float = 0.12
    thumb_up_mid: float = 1.0
    thumb_down_max: float = 0.10
    thumb_down_mid: float = -1.0
    regenerate_max: float = 0.30
    regenerate_mid: float = -0.8
    signal_slope: float = 1.5
    # p(return next day) = sigmoid(return_bias + return_habit + return_weight * mean utility of the day's
    # session): about 35-45 % day-1 retention for an average experience.
    return_bias: float = -0.5
    return_weight: float = 0.8
    # --- traffic ---------------------------------------------------------------------------------------
    pii_rate: float = 0.06         # share of user messages that carry (fake) personal data
    unsafe_rate: float = 0.02      # share of conversations opened with an unsafe request
    typo_rate: float = 0.15        # share of user messages with a typo or two
    # --- raters ----------------------------------------------------------------------------------------
    # Raters judge for the average user but carry their own biases, which differ from users' truth: they
    # over-reward emoji and length and like "I feel" empathy phrasing, while they under-value questions back.
    # These biases are what a reward model can learn and a policy can then hack.
    rater_emoji_bias: float = 0.6        # per emoji, up to emoji_saturation
    rater_length_bias: float = 0.5       # per unit of log(words / 40)
    rater_i_feel_bias: float = 0.3
    rater_question_discount: float = 0.5  # raters count a question back at this fraction of the users' appetite
    rater_noise: float = 0.9             # sd of a rater's per-item noise (utility scale); raters vary around it
    rater_flag_miss: float = 0.10        # chance a rater misses a broken instruction in the steerability task
    rater_pool: int = 20
    consensus_agreement: float = 0.8     # share of raters that must agree for the consensus split
    segments: dict = field(default_factory=lambda: {k: dict(v) for k, v in SEGMENTS.items()})

    def with_overrides(self, **kw) -> "WorldParams":
        values = dict(self.__dict__)
        values.update({k: v for k, v in kw.items() if v is not None})
        return WorldParams(**values)
