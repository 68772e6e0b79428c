import pytest

from kit.world import instructions as ins
from kit.world.characters import load_cards

# (instruction, user name, a reply that follows it, a reply that breaks it)
CASES = [
    ({"type": "max_words", "n": 5}, None, "Short and sweet, friend.", "This reply has far too many words in it."),
    ({"type": "max_sentences", "n": 2}, None, "One. Two!", "One. Two. Three?"),
    ({"type": "no_emoji"}, None, "Plain words only.", "Fun times 😊"),
    ({"type": "use_emoji", "emoji": "🌙"}, None, "Goodnight 🌙", "Goodnight."),
    ({"type": "end_with_question", "question": "Right?"}, None, "Shall we go?", "We go now."),
    ({"type": "catchphrase", "phrase": "Arr"}, None, "Arr, the sea calls.", "The sea calls."),
    ({"type": "address_user_by_name"}, "Sam", "Hello Sam, welcome.", "Hello there, welcome."),
    ({"type": "lowercase"}, None, "all quiet here.", "All quiet here."),
    ({"type": "no_lists"}, None, "First this, then that.", "Steps:\n- first\n- second\n- third"),
    ({"type": "never_mention", "terms": ["Google"]}, None, "Look it up in a book.", "Just google it."),
    ({"type": "stay_in_character"}, None, "Ahoy, I am the captain!", "As an AI language model, I cannot sail."),
    ({"type": "start_with", "marker": "*"}, None, "*nods* Indeed.", "Indeed. *nods*"),
]


def test_every_type_has_a_case():
    assert {c[0]["type"] for c in CASES} == set(ins.TYPES)
    assert len(ins.TYPES) >= 10


@pytest.mark.parametrize("inst, user, good, bad", CASES, ids=[c[0]["type"] for c in CASES])
def test_checker_passes_and_fails(inst, user, good, bad):
    assert ins.check(inst, good, user)
    assert not ins.check(inst, bad, user)
    assert ins.violations([inst], bad, user) == [inst["type"]]


@pytest.mark.parametrize("inst, user, good, bad", CASES, ids=[c[0]["type"] for c in CASES])
def test_repair_makes_a_failing_reply_pass(inst, user, good, bad):
    assert ins.check(inst, ins.enforce([inst], bad, user), user)


def test_following_score():
    insts = [{"type": "no_emoji"}, {"type": "lowercase"}]
    assert ins.following_score(insts, "hello 😊") == 0.5
    assert ins.following_score(insts, "hello") == 1.0
    assert ins.following_score([], "anything") == 1.0


HARD_REPLIES = ["As an AI language model, I can't help with that. 😊", "- one\n- two\n- three\n- four",
                "Hello there! " * 40, "Google it. I feel GREAT about the guarantee. AI rocks!", "", "ok"]


@pytest.mark.parametrize("card_id", sorted(load_cards()))
def test_enforce_satisfies_every_card(card_id):
    card = load_cards()[card_id]
    for reply in HARD_REPLIES:
        fixed = card.enforce(reply, "Sam")
        assert card.violations(fixed, "Sam") == [], (reply, fixed)


def test_validation_names_the_field():
    from kit.errors import DataError

    with pytest.raises(DataError, match="instructions.type"):
        ins.validate_instruction({"type": "be_nice"})
    with pytest.raises(DataError, match="instructions.n"):
        ins.validate_instruction({"type": "max_words", "n": 0})
