"""Writes the corpus of malformed inputs next to this file, and expected.json: for each input, a piece of the error
message that says what is wrong with it (the field, or what was expected).

    python tests/bad_inputs/make_corpus.py

The files are committed; this script is how they were made (some hold bytes that are not UTF-8, which an editor
would not keep). tests/test_bad_inputs.py runs every one through every public loader and the command line.
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
CARD = json.loads((HERE.parents[1] / "data_samples" / "cards" / "luna.json").read_text(encoding="utf-8"))
USER, BOT = {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello!"}
CONV = {"conversation_id": "c1", "character_id": "luna", "source": "user", "user_id": "u-1", "day": 0,
        "messages": [USER, dict(BOT, signals={"continue": 1, "thumb_up": 0})]}
PAIR = {"prompt": [USER], "chosen": [{"role": "assistant", "content": "hey there!"}],
        "rejected": [{"role": "assistant", "content": "no."}], "character_id": "luna", "n_raters": 5,
        "votes_chosen": 4, "agreement": 0.8}
EVENT = {"type": "exposure", "user_id": "u-1", "arm": "control", "day": 0}

# name -> (content: str | bytes | dict | None for a folder, expected piece of the message, needs the cast)
CASES: dict[str, tuple] = {}


def case(name, content, expect, cast=False):
    CASES[name] = (content, expect, cast)


def line(rec) -> str:
    return json.dumps(rec, ensure_ascii=False)


def conv(**kw) -> str:
    return line({**CONV, **kw})


def lines(*recs) -> str:
    return "\n".join(recs) + "\n"


# ---------------------------------------------------------------------------------------------- conversations
C = "conversations/"
case(C + "not_utf8.jsonl", lines(conv()).encode() + b'{"conversation_id": "c2\xff"}\n', "expected UTF-8 text")
case(C + "latin1.jsonl", conv(user_name="Ren\u00e9e").encode("latin-1") + b"\n", "expected UTF-8 text")
case(C + "empty.jsonl", "", "an empty file")
case(C + "blank_lines_only.jsonl", "\n  \n\n", "an empty file")
case(C + "folder.jsonl", None, "a folder")
case(C + "missing.jsonl", "MISSING", "no such file")
case(C + "json_list.jsonl", lines(conv(), "[1, 2]"), ":2: expected a JSON object")
case(C + "json_string.jsonl", lines('"hello"'), ":1: expected a JSON object")
case(C + "truncated.jsonl", lines(conv(), '{"conversation_id": "c2", '), ":2: expected one JSON object per line")
case(C + "nan_day.jsonl", lines(conv().replace('"day": 0', '"day": NaN')), "NaN and Infinity are not JSON")
case(C + "infinity_signal.jsonl", lines(conv().replace('"continue": 1', '"continue": Infinity')),
     "NaN and Infinity are not JSON")
case(C + "duplicate_key.jsonl", lines(conv().replace('"source": "user"', '"source": "user", "source": "internal"')),
     "field 'source': expected each key once")
case(C + "duplicate_conversation_id.jsonl", lines(conv(), conv()),
     ":2: field 'conversation_id': expected an id not used")
case(C + "day_true.jsonl", lines(conv(day=True)), "field 'day': expected an integer >= 0, got True")
case(C + "day_negative.jsonl", lines(conv(day=-1)), "field 'day'")
case(C + "day_string.jsonl", lines(conv(day="3")), "field 'day'")
case(C + "day_float.jsonl", lines(conv(day=1.5)), "field 'day'")
case(C + "signal_true.jsonl", lines(conv(messages=[USER, dict(BOT, signals={"continue": True})])),
     "field 'messages[1].signals.continue': expected 0 or 1, got True")
case(C + "signal_two.jsonl", lines(conv(messages=[USER, dict(BOT, signals={"thumb_up": 2})])),
     "messages[1].signals.thumb_up")
case(C + "signal_float.jsonl", lines(conv(messages=[USER, dict(BOT, signals={"thumb_up": 1.0})])),
     "messages[1].signals.thumb_up")
case(C + "signal_on_user.jsonl", lines(conv(messages=[dict(USER, signals={"continue": 1}), BOT])),
     "field 'messages[0].signals'")
case(C + "signal_unknown.jsonl", lines(conv(messages=[USER, dict(BOT, signals={"love": 1})])),
     "messages[1].signals.love")
case(C + "signals_list.jsonl", lines(conv(messages=[USER, dict(BOT, signals=[1, 0])])), "messages[1].signals")
case(C + "assistant_first.jsonl", lines(conv(messages=[BOT, USER, BOT])),
     "field 'messages[0].role': expected 'user'")
case(C + "two_assistants.jsonl", lines(conv(messages=[USER, BOT, BOT])), "field 'messages[2].role': expected 'user'")
case(C + "two_users.jsonl", lines(conv(messages=[USER, USER, BOT])), "field 'messages[1].role': expected 'assistant'")
case(C + "system_not_first.jsonl", lines(conv(messages=[USER, {"role": "system", "content": "x"}, BOT])),
     "'system' only as the first message")
case(C + "no_assistant.jsonl", lines(conv(messages=[USER])), "at least one assistant message")
case(C + "empty_content.jsonl", lines(conv(messages=[{"role": "user", "content": "  "}, BOT])),
     "messages[0].content")
case(C + "content_number.jsonl", lines(conv(messages=[{"role": "user", "content": 5}, BOT])), "messages[0].content")
case(C + "role_missing.jsonl", lines(conv(messages=[{"content": "hi"}, BOT])), "messages[0].role")
case(C + "role_unknown.jsonl", lines(conv(messages=[{"role": "narrator", "content": "hi"}, BOT])),
     "got 'narrator'")
case(C + "messages_string.jsonl", lines(conv(messages="hi")), "field 'messages': expected a non-empty list")
case(C + "messages_empty.jsonl", lines(conv(messages=[])), "field 'messages': expected a non-empty list")
case(C + "message_not_object.jsonl", lines(conv(messages=["hi", BOT])), "field 'messages[0]'")
case(C + "source_unknown.jsonl", lines(conv(source="web")), "field 'source'")
case(C + "conversation_id_null.jsonl", lines(conv(conversation_id=None)), "field 'conversation_id'")
case(C + "conversation_id_number.jsonl", lines(conv(conversation_id=7)), "field 'conversation_id'")
case(C + "user_id_empty.jsonl", lines(conv(user_id=" ")), "field 'user_id'")
case(C + "user_id_email.jsonl", lines(conv(user_id="maria.garcia@gmail.com")),
     "field 'user_id': expected an opaque id, not personal data (it holds email)")
case(C + "conversation_id_phone.jsonl", lines(conv(conversation_id="+1 415 555 2671")),
     "field 'conversation_id': expected an opaque id")
case(C + "user_name_number.jsonl", lines(conv(user_name=5)), "field 'user_name'")
case(C + "bom_then_bad_line.jsonl", "\ufeff" + lines(conv(), conv(conversation_id="c2", source="web")),
     "bom_then_bad_line.jsonl:2: field 'source'")
case(C + "character_unknown.jsonl", lines(conv(character_id="gandalf")),
     "field 'character_id': expected one of the cast", cast=True)

# ---------------------------------------------------------------------------------------------- preference pairs
P = "preferences/"


def pair(**kw) -> str:
    return line({**PAIR, **kw})


case(P + "chosen_equals_rejected.jsonl", lines(pair(rejected=PAIR["chosen"])), "field 'rejected'")
case(P + "equal_up_to_whitespace.jsonl", lines(pair(rejected=[{"role": "assistant", "content": " hey  there! "}])),
     "equal up to whitespace")
case(P + "equal_once_redacted.jsonl",
     lines(pair(chosen=[{"role": "assistant", "content": "call 415-555-2671"}],
                rejected=[{"role": "assistant", "content": "call 212-555-0147"}])), "once personal data is redacted")
case(P + "agreement_nan.jsonl", lines(pair().replace('"agreement": 0.8', '"agreement": NaN')), "NaN")
case(P + "agreement_negative.jsonl", lines(pair(agreement=-0.2)), "field 'agreement'")
case(P + "agreement_above_one.jsonl", lines(pair(agreement=1.5)), "field 'agreement'")
case(P + "agreement_string.jsonl", lines(pair(agreement="0.8")), "field 'agreement'")
case(P + "n_raters_zero.jsonl", lines(pair(n_raters=0, votes_chosen=0)), "field 'n_raters'")
case(P + "n_raters_float.jsonl", lines(pair(n_raters=2.5)), "field 'n_raters'")
case(P + "n_raters_true.jsonl", lines(pair(n_raters=True)), "field 'n_raters'")
case(P + "votes_above_raters.jsonl", lines(pair(votes_chosen=6)), "field 'votes_chosen'")
case(P + "prompt_ends_with_assistant.jsonl", lines(pair(prompt=[USER, BOT])), "prompt[-1].role")
case(P + "prompt_starts_with_assistant.jsonl", lines(pair(prompt=[BOT, USER])), "field 'prompt[0].role'")
case(P + "chosen_two_messages.jsonl", lines(pair(chosen=[BOT, BOT])), "field 'chosen': expected exactly one")
case(P + "chosen_user_role.jsonl", lines(pair(chosen=[USER])), "chosen[-1].role")
case(P + "rejected_missing.jsonl", lines(line({k: v for k, v in PAIR.items() if k != "rejected"})),
     "field 'rejected'")
case(P + "chosen_string.jsonl", lines(pair(chosen="hey")), "field 'chosen'")
case(P + "strings_without_prompt.jsonl", lines(line({"chosen": "hey there!", "rejected": "no.", "character_id": "luna"})),
     "field 'prompt': expected a prompt")
case(P + "source_unknown.jsonl", lines(pair(source="web")), "field 'source'")
case(P + "character_id_number.jsonl", lines(pair(character_id=5)), "field 'character_id'")
case(P + "single_rater_agrees_string.jsonl", lines(pair(single_rater_agrees="yes")), "field 'single_rater_agrees'")
case(P + "user_id_email.jsonl", lines(pair(user_id="kai99@proton.me")), "field 'user_id': expected an opaque id")
case(P + "empty.jsonl", "", "an empty file")
case(P + "not_utf8.jsonl", b"\xfe\xff" + lines(pair()).encode(), "expected UTF-8 text")
case(P + "character_unknown.jsonl", lines(pair(character_id="gandalf")), "expected one of the cast", cast=True)
case(P + "character_missing.jsonl", lines(line({k: v for k, v in PAIR.items() if k != "character_id"})),
     "expected one of the cast", cast=True)

# ---------------------------------------------------------------------------------------------- A/B logs
A = "ab_logs/"


def event(**kw) -> str:
    return line({**EVENT, **kw})


case(A + "arm_unknown.jsonl", lines(event(arm="A")), "field 'arm'")
case(A + "day_negative.jsonl", lines(event(day=-1)), "field 'day'")
case(A + "day_true.jsonl", lines(event(day=True)), "field 'day'")
case(A + "day_string.jsonl", lines(event(day="0")), "field 'day'")
case(A + "type_unknown.jsonl", lines(event(type="click")), "field 'type'")
case(A + "user_in_both_arms.jsonl", lines(event(), event(type="message", arm="treatment")),
     ":2: field 'arm': expected 'control'")
case(A + "user_id_missing.jsonl", lines(line({k: v for k, v in EVENT.items() if k != "user_id"})), "field 'user_id'")
case(A + "user_id_number.jsonl", lines(event(user_id=42)), "field 'user_id'")
case(A + "user_id_email.jsonl", lines(event(user_id="sam.lee@gmail.com")), "expected an opaque id")
case(A + "empty.jsonl", "\n", "an empty file")
case(A + "timestamp_words.jsonl", lines(line({k: v for k, v in EVENT.items() if k != "day"} | {"timestamp": "monday"})),
     "field 'timestamp': expected an ISO 8601 time")
case(A + "not_utf8.jsonl", lines(event()).encode() + b"\x80\n", ":2: expected UTF-8 text")
case(A + "json_array.jsonl", lines("[" + event() + "]"), "expected a JSON object")

# ---------------------------------------------------------------------------------------------- character cards
K = "cards/"


def card(edit) -> dict:
    obj = copy.deepcopy(CARD)
    edit(obj)
    return obj


def png(chunks: dict) -> bytes:
    """A small PNG image with these text chunks, as bytes (Pillow)."""
    import io

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info, out = PngInfo(), io.BytesIO()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", (4, 4)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def fly(obj) -> dict:
    return obj["data"]["extensions"]["flywheel"]


case(K + "list.json", json.dumps([CARD]), "expected a JSON object (a Character Card V2, V3 or V1)")
case(K + "not_utf8.json", json.dumps(CARD).replace("Luna", "Lun\udcff", 1).encode("utf-8", "surrogateescape"),
     "expected UTF-8 text")
case(K + "truncated.json", json.dumps(CARD, indent=2)[:200], "expected a JSON object (")
case(K + "empty.json", "", "expected a JSON object (")
case(K + "folder.json", None, "a folder")
case(K + "nan.json", json.dumps(card(lambda o: o["data"].update(depth=float("nan")))), "NaN")
case(K + "duplicate_key.json", json.dumps(CARD).replace('"name": "Luna"', '"name": "Luna", "name": "Sol"'),
     "field 'name': expected each key once")
case(K + "spec_wrong.json", card(lambda o: o.update(spec="chara_card_v9")), "field 'spec'")
case(K + "data_missing.json", {"spec": "chara_card_v2", "spec_version": "2.0"}, "field 'data'")
case(K + "name_empty.json", card(lambda o: o["data"].update(name="")), "field 'data.name'")
case(K + "name_too_long.json", card(lambda o: o["data"].update(name="L" * 300)), "field 'data.name': expected at most")
case(K + "description_missing.json", card(lambda o: o["data"].pop("description")), "field 'data.description'")
case(K + "description_100kb.json", card(lambda o: o["data"].update(description="A dreamy friend. " * 6000)),
     "field 'data.description'")
case(K + "description_prompt_too_long.json", card(lambda o: o["data"].update(description="A dreamy friend. " * 200)),
     "system prompt stays under")
case(K + "personality_null.json", card(lambda o: o["data"].update(personality=None)), "field 'data.personality'")
case(K + "scenario_number.json", card(lambda o: o["data"].update(scenario=3)), "field 'data.scenario'")
case(K + "tags_string.json", card(lambda o: o["data"].update(tags="pirate")), "field 'data.tags'")
case(K + "tags_numbers.json", card(lambda o: o["data"].update(tags=[1, 2])), "field 'data.tags'")
case(K + "extensions_list.json", card(lambda o: o["data"].update(extensions=[])), "field 'data.extensions'")
case(K + "flywheel_string.json", card(lambda o: o["data"]["extensions"].update(flywheel="yes")),
     "data.extensions.flywheel")
case(K + "greeting_turn_string.json", card(lambda o: fly(o).update(greeting_turn="no")), "flywheel.greeting_turn")
case(K + "category_unknown.json", card(lambda o: fly(o).update(category="wizard")), "flywheel.category")
case(K + "topics_string.json", card(lambda o: fly(o).update(topics="the stars")), "flywheel.topics")
case(K + "instructions_empty.json", card(lambda o: fly(o).update(instructions=[])), "flywheel.instructions")
case(K + "instruction_type_unknown.json", card(lambda o: fly(o)["instructions"].append({"type": "rhyme"})),
     "instructions[4].type")
case(K + "max_sentences_string.json", card(lambda o: fly(o)["instructions"][2].update(n="4")), "instructions[2].n")
case(K + "max_sentences_true.json", card(lambda o: fly(o)["instructions"][2].update(n=True)), "instructions[2].n")
case(K + "use_emoji_number.json", card(lambda o: fly(o)["instructions"][1].update(emoji=5)),
     "instructions[1].emoji")
case(K + "not_a_png.png", json.dumps(CARD), "expected a PNG image")
case(K + "png_without_card.png", png({"Software": "a paint program"}), "a 'ccv3' or 'chara' text chunk")
case(K + "png_chunk_not_base64.png", png({"chara": "not base64 at all!"}), "chunk 'chara'")
case(K + "png_cut_short.png", png({"chara": "x" * 200})[:60], "a whole PNG file")
case(K + "never_mention_string.json", card(lambda o: fly(o)["instructions"].append({"type": "never_mention",
                                                                                    "terms": "AI"})),
     "instructions[4].terms")


def main() -> None:
    for sub in ("conversations", "preferences", "ab_logs", "cards"):
        shutil.rmtree(HERE / sub, ignore_errors=True)
    expected = {}
    for name, (content, expect, cast) in CASES.items():
        path = HERE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        expected[name] = {"expect": expect, "needs_cast": cast}
        if content == "MISSING":
            continue
        if content is None:   # a folder where a file is expected (a file inside, so git keeps it)
            path.mkdir()
            (path / "README").write_text("a folder given where a file is expected\n", encoding="utf-8")
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, dict):
            path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        else:
            path.write_text(content, encoding="utf-8")
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n", encoding="utf-8")
    print(f"{len(CASES)} malformed inputs -> {HERE}")


if __name__ == "__main__":
    main()
