"""Writes cards/kestrel.png the way front ends export a card: a picture with the Character Card V2 JSON, base64, in a
PNG text chunk named 'chara'. Made with Pillow alone (not the kit), so the test reads a file the kit did not write.

    python tests/user_files/make_png_card.py
"""
import base64
import json
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

CARD = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {
    "name": "Kestrel", "description": "{{char}} is the game master of a dungeon crawl, narrating every room for "
                                      "{{user}} in the second person.",
    "personality": "theatrical, fair, loves a cliffhanger", "scenario": "{{user}} stands at the mouth of a cave.",
    "first_mes": "The cave breathes cold air at you. Torch or no torch?", "mes_example": "", "creator_notes": "",
    "system_prompt": "", "post_history_instructions": "", "alternate_greetings": [], "tags": ["rpg", "fantasy"],
    "creator": "a test author", "character_version": "1.0",
    "extensions": {"flywheel": {"category": "game_master", "topics": ["traps", "treasure"],
                                "instructions": [{"type": "end_with_question", "question": "What do you do?"}]}}}}

info = PngInfo()
info.add_text("chara", base64.b64encode(json.dumps(CARD).encode("utf-8")).decode("ascii"))
Image.new("RGB", (48, 64), (120, 90, 60)).save(Path(__file__).parent / "cards" / "kestrel.png", pnginfo=info)
