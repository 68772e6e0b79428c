import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def world():
    from kit.world.world import World

    return World.build(seed=0, n_users=120)


@pytest.fixture(scope="session")
def base_policy():
    """The embedded model, loaded once for the whole session, with tiny generation settings."""
    from kit.config import GenerationConfig, stage_config
    from kit.generation import Policy

    return Policy.load("smollm2-135m-instruct", name="base", gen=stage_config(GenerationConfig, "tiny"), seed=0)
