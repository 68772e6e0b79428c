import json

import pytest

from kit.errors import DataError
from kit.world.characters import CATEGORIES, card_from_v2, load_card, load_cards, save_card


def test_cast_is_varied_and_checkable():
    cards = load_cards()
    assert len(cards) >= 12
    assert len({c.category for c in cards.values()}) >= 5
    assert all(2 <= len(c.instructions) <= 5 for c in cards.values())
    assert len({i["type"] for c in cards.values() for i in c.instructions}) >= 10
    assert {c.category for c in cards.values()} <= set(CATEGORIES)


def test_v2_round_trip(tmp_path):
    card = load_cards()["luna"]
    save_card(card, tmp_path / "luna.json")
    raw = json.loads((tmp_path / "luna.json").read_text())
    assert raw["spec"] == "chara_card_v2" and raw["data"]["name"] == "Luna"
    back = load_card(tmp_path / "luna.json")
    assert back.instructions == card.instructions and back.to_v2() == card.to_v2()


def test_system_prompt_lists_the_rules():
    card = load_cards()["coach_dana"]
    prompt = card.system_prompt("Sam")
    assert "Coach's tip:" in prompt and "Sam" in prompt
    messages = card.prompt([{"role": "user", "content": "hi"}], "Sam")
    assert messages[0]["role"] == "system" and messages[-1] == {"role": "user", "content": "hi"}


def test_bad_card_is_named(tmp_path):
    card = load_cards()["luna"].to_v2()
    card["data"]["extensions"]["flywheel"]["category"] = "wizard"
    with pytest.raises(DataError, match="data.extensions.flywheel.category"):
        card_from_v2(card, "x.json")
    (tmp_path / "broken.json").write_text("{\n\"spec\": ")
    with pytest.raises(DataError, match="broken.json:2"):
        load_card(tmp_path / "broken.json")
