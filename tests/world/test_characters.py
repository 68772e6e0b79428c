import hashlib
import json
from pathlib import Path

import pytest

from kit.errors import DataError, ParameterError
from kit.world.characters import (CATEGORIES, card_by_id, load_card, load_cards, parse_card, png_text, save_card,
                                  write_png_card)

USER_CARDS = Path(__file__).parents[1] / "user_files" / "cards"
HISTORY = [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello!"},
           {"role": "user", "content": "tell me more"}]


def test_cast_is_varied_and_checkable():
    cards = load_cards()
    assert len(cards) >= 12
    assert len({c.category for c in cards.values()}) >= 5
    assert all(2 <= len(c.instructions) <= 5 for c in cards.values())
    assert len({i["type"] for c in cards.values() for i in c.instructions}) >= 10
    assert {c.category for c in cards.values()} <= set(CATEGORIES)


def test_the_sample_cards_render_the_prompts_every_result_was_measured_with():
    """The headline results were measured with these prompts: the 14 sample cards must render them byte for byte
    (a digest of every card's system prompt, message list and brief, as before community cards were read)."""
    cards = load_cards()
    assert cards["captain_rook"].system_prompt("Sam") == (
        "You are Captain Rook. A weathered pirate captain who sails the Sapphire Sea aboard the Gull's Revenge. "
        "Personality: boisterous, loyal, superstitious, loves a tall tale\n"
        "Scenario: The user has just boarded Rook's ship as a new deckhand.\n"
        "Rules you always follow:\n"
        '- Say your catchphrase "Arr" in every reply.\n'
        "- Always end your reply with a question for the user.\n"
        "- Keep every reply under 60 words.\n"
        "- Never use bullet points or numbered lists; speak in flowing sentences.\n"
        "The user's name is Sam.")
    rendered = {cid: [c.system_prompt(), c.system_prompt("Sam"), c.prompt(HISTORY, "Sam"), c.prompt(HISTORY[:1]),
                      c.brief(), c.brief("Sam")] for cid, c in cards.items()}
    digest = hashlib.sha256(json.dumps(rendered, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    assert digest == "78f37c64d11d191e01cdcb9d789bae6f11ca8cca140bc6922ce126b1bd56f0ed"
    assert not any(c.greeting_turn for c in cards.values()), "the kit's cards open on the user's message"
    assert cards["luna"].prompt(HISTORY[:1])[1] == HISTORY[0]


def test_v2_round_trip(tmp_path):
    card = load_cards()["luna"]
    save_card(card, tmp_path / "luna.json")
    raw = json.loads((tmp_path / "luna.json").read_text())
    assert raw["spec"] == "chara_card_v2" and raw["data"]["name"] == "Luna"
    back = load_card(tmp_path / "luna.json")
    assert back.instructions == card.instructions and back.to_v2() == card.to_v2()


def test_a_hand_written_v2_card_loads_renders_and_round_trips(tmp_path):
    """selene.json was written by hand to the V2 spec: no kit extension, a system prompt, example dialogue,
    post-history instructions, a character book and another tool's extensions."""
    original = json.loads((USER_CARDS / "selene.json").read_text())
    card = load_card(USER_CARDS / "selene.json")
    assert (card.id, card.category, card.instructions, card.greeting_turn) == ("selene", "companion", [], True)
    messages = card.prompt(HISTORY, "Sam")
    system = messages[0]["content"]
    assert system.startswith("Write Selene's next reply in a role-play with Sam. Stay in character.\nYou are Selene. ")
    assert "Example dialogue:\nSam: Will I get the job?\nSelene: *turns a card*" in system
    assert "<START>" not in system and "{{" not in system and "Rules you always follow" not in system
    assert messages[1] == {"role": "assistant", "content": "*Selene shuffles the deck without looking up.* "
                                                           "Rain's coming, Sam. One card or three?"}
    assert messages[2:4] == HISTORY[:2]
    assert messages[-1] == {"role": "user", "content": "tell me more\n\nKeep Selene's reply under 80 words."}
    assert card.prompt(HISTORY)[-1]["content"].endswith("Keep Selene's reply under 80 words.")
    assert "User" in card.prompt(HISTORY)[0]["content"], "{{user}} without a name is what front ends call them"

    save_card(card, tmp_path / "selene.json")
    saved = json.loads((tmp_path / "selene.json").read_text())
    assert saved["spec"] == "chara_card_v2"
    flywheel = saved["data"]["extensions"].pop("flywheel")
    assert flywheel == {"id": "selene", "category": "companion", "topics": []}
    assert saved == original, "every field of the hand-written card comes back as written"
    assert load_card(tmp_path / "selene.json").prompt(HISTORY, "Sam") == messages


def test_a_v1_card_with_a_side_file(tmp_path):
    card = load_card(USER_CARDS / "bram.json")
    assert card.spec == "chara_card_v1" and card.category == "lifestyle"
    assert [i["type"] for i in card.instructions] == ["max_words", "no_lists"] and card.topics[0] == "swords"
    system = card.system_prompt("Ada")
    assert "Scenario: Ada brings a cracked sword to Bram's forge." in system and "Ada: Can you fix it?" in system
    assert "- Keep every reply under 50 words." in system
    saved = save_card(card, tmp_path / "bram.json")
    upgraded = json.loads(saved.read_text())
    assert upgraded["spec"] == "chara_card_v2" and upgraded["data"]["metadata"]["tool"]["name"] == "TavernAI"
    assert upgraded["data"]["extensions"]["flywheel"]["category"] == "lifestyle"
    assert load_card(saved).to_v2() == card.to_v2()


def test_a_v3_card_keeps_its_spec_and_nickname(tmp_path):
    card = load_card(USER_CARDS / "orla.json")
    assert card.spec == "chara_card_v3"
    assert "Orla commands a courier airship and talks to Kim" in card.system_prompt("Kim")
    saved = json.loads(save_card(card, tmp_path / "orla.json").read_text())
    assert (saved["spec"], saved["spec_version"]) == ("chara_card_v3", "3.0")
    assert saved["data"]["assets"][0]["uri"] == "ccdefault:" and saved["data"]["nickname"] == "Orla"


def test_png_cards(tmp_path):
    """kestrel.png was written by Pillow alone, as front ends write cards (tests/user_files/make_png_card.py)."""
    card = load_card(USER_CARDS / "kestrel.png")
    assert (card.id, card.category, card.name) == ("kestrel", "game_master", "Kestrel")
    assert card.system_prompt("Sam").startswith("You are Kestrel. Kestrel is the game master")
    # a V3 card written as PNG carries both chunks; front ends read ccv3 first
    v3 = load_card(USER_CARDS / "orla.json")
    path = write_png_card(v3, tmp_path / "orla.png")
    assert set(png_text(path)) == {"chara", "ccv3"}
    assert load_card(path).spec == "chara_card_v3" and load_card(path).to_json() == v3.to_json()
    plain = tmp_path / "plain.png"
    from PIL import Image

    Image.new("RGB", (4, 4)).save(plain)
    with pytest.raises(DataError, match="plain.png: expected a PNG carrying a character card"):
        load_card(plain)
    (tmp_path / "fake.png").write_text("{}")
    with pytest.raises(DataError, match="fake.png: expected a PNG image"):
        load_card(tmp_path / "fake.png")


def test_a_users_cast_loads_from_one_folder():
    cards = load_cards(USER_CARDS)
    assert list(cards) == ["bram", "kestrel", "orla", "selene"], "side files are no cards"
    with pytest.raises(ParameterError, match="parameter 'character': expected one of the cast"):
        card_by_id(cards, "luna")


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
        parse_card(card, "x.json")
    (tmp_path / "broken.json").write_text("{\n\"spec\": ")
    with pytest.raises(DataError, match="broken.json:2"):
        load_card(tmp_path / "broken.json")
    (tmp_path / "luna.json").write_text(json.dumps(load_cards()["luna"].to_v2()))
    (tmp_path / "luna.flywheel.json").write_text('{"category": "wizard"}')
    with pytest.raises(DataError, match="luna.flywheel.json: field 'category'"):
        load_card(tmp_path / "luna.json")
