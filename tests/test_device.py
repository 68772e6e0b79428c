"""Device detection sits below config and models: both ask it, neither imports the other for it."""
import ast
from pathlib import Path

import kit
from kit import device

KIT = Path(kit.__file__).resolve().parent


def test_cuda_available_answers_a_bool():
    assert isinstance(device.cuda_available(), bool)


def _imports() -> dict[str, set[str]]:
    """kit module -> the kit modules it imports anywhere in its source (at the top or inside a function)."""
    names = {}
    for path in KIT.rglob("*.py"):
        parts = path.relative_to(KIT.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    deps.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in names else target)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = {d for d in deps if d in names and d != name}
    return graph


def test_config_and_models_do_not_import_each_other():
    graph = _imports()
    assert "kit.device" in graph["kit.config"] and "kit.device" in graph["kit.models"]
    assert "kit.models" not in graph["kit.config"]


def test_kit_has_no_import_cycle():
    graph = _imports()
    done = set()

    def visit(name, path):
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(name):] + [name]))
        if name in done:
            return
        for dep in sorted(graph[name]):
            visit(dep, path + [name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    assert done == set(graph)
