"""The world tour (notebook 01): tables of the cast and the users, computed outside the simulator."""
import ast
from pathlib import Path

import kit
from kit import world_tour


def test_cards_table_lists_every_card_with_its_instructions(world):
    table = world_tour.cards_table(world.cards)
    assert list(table["id"]) == list(world.cards) and table["instructions"].str.len().gt(0).all()


def test_segment_table_counts_every_user(world):
    table = world_tour.segment_table(world)
    assert table["users"].sum() == len(world.population)


def test_the_simulator_imports_neither_the_view_nor_a_step():
    """kit/world/ simulates; the tour and the steps' modules look at it, never the other way round."""
    from kit.method import method_steps

    looking = {m for s in method_steps() for m in s.modules} | {"world_tour"}
    world_dir = Path(kit.__file__).resolve().parent / "world"
    for path in world_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                assert (node.module or "").split(".")[0] not in looking, (path.name, node.module)
