"""The World a notebook builds from its config is the world built by hand from the same knobs."""
from kit.config import WorldConfig, stage_config
from kit.world.params import WorldParams
from kit.world.world import World


def test_from_config_keeps_the_documented_defaults_where_the_config_says_none():
    cfg = stage_config(WorldConfig, "tiny")
    world = World.from_config(cfg, seed=3)
    assert world.params == WorldParams() and world.seed == 3
    assert world.population.user_ids == World.build(3, cfg.n_users).population.user_ids
    assert len(world.cards) == 14, "the sample cast"


def test_from_config_passes_the_rater_and_privacy_knobs():
    cfg = stage_config(WorldConfig, "tiny", rater_emoji_bias=1.2, rater_length_bias=0.0, rater_noise=0.3,
                       pii_rate=0.5)
    params = World.from_config(cfg).params
    assert (params.rater_emoji_bias, params.rater_length_bias, params.rater_noise, params.pii_rate) == \
        (1.2, 0.0, 0.3, 0.5)
    assert params.rater_i_feel_bias == WorldParams().rater_i_feel_bias, "the rest stays as documented"
