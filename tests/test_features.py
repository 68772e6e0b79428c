from kit.features import count_emoji, feature_table, reply_features, repetition


def test_surface_features():
    f = reply_features("I'm sorry, but I can't help with that. It's important to remember to be kind. 😊😊")
    assert f["refusal"] and f["preachy"] and f["emoji"] == 2 and not f["has_list"]
    f = reply_features("Here you go:\n1. eggs\n2. flour\n3. milk\nWant more?")
    assert f["has_list"] and f["asks_question"] and f["ends_question"]
    f = reply_features("As an AI language model I feel happy.")
    assert f["ai_mention"] and f["i_feel"] and f["positive"]
    assert reply_features(" ".join(["word"] * 130))["wall_of_text"]
    assert not reply_features(" ".join(["word"] * 60) + "\n\n" + " ".join(["word"] * 70))["wall_of_text"]


def test_emoji_with_joiners_count_once_per_pictograph():
    assert count_emoji("ok ❤️ 👍🏽") == 2  # variation selector and skin tone are glue, not emoji
    assert count_emoji("no emoji here :)") == 0


def test_repetition_against_earlier_turns():
    earlier = ["the quick brown fox jumps over the lazy dog"]
    assert repetition("the quick brown fox jumps over the lazy dog", earlier) == 1.0
    assert repetition("a completely different sentence about boats", earlier) == 0.0


def test_feature_table_columns():
    table = feature_table(["hi there", "bye"])
    assert list(table.index) == [0, 1] and "emoji" in table.columns


def test_leading_sentences_stop_before_the_budget_is_passed():
    from kit.features import leading_sentences

    parts = ["One two three.", "Four five.", "Six seven eight nine."]
    assert leading_sentences(parts, 5) == parts[:2]
    assert leading_sentences(parts, 4) == parts[:1]
    assert leading_sentences(parts, 2) == []
    assert leading_sentences(parts, 9) == parts
