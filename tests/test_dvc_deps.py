"""dvc.yaml's code deps follow the imports, and imports run one way, down the floors.

For every stage, the project files that ``python -m stages.<name>`` can import (the whole
closure, function-level imports included) must be covered by that stage's deps, and no code
dep may lie outside it (narrow deps: a validate-only change must not rerun train). Otherwise
a code change leaves ``dvc status`` clean while the outputs are stale.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ephys2expr", "stages")

# The floors of the house, lowest first: a module imports only from lower floors or from its
# own folder (a shared top-level module counts as its own folder).
FLOORS: list[set[str]] = [
    {
        "errors",
        "paths",
        "io",
        "temps",
        "settings",
        "features",
        "taxonomy",
        "cli",
        "executor",
        "cell_inputs",
        "rounding",
        "scaling",
        "",
    },
    {"readers", "identity", "download", "recordings"},
    {"model"},  # the store's classifiers predict with identity's formulas (softmax, blend)
    {"prepare", "train", "predict"},
    {"validate"},
    {"stages"},
]


def module_path(name: str) -> Path | None:
    """The project file of module ``name`` (a package's ``__init__.py``), or None."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_files(path: Path) -> set[Path]:
    """Project files ``path`` imports (any depth of the syntax tree), with the
    ``__init__.py`` of every package on the way, which Python runs too."""
    rel = path.relative_to(ROOT).with_suffix("")
    package = rel.parts[:-1] if path.name != "__init__.py" else rel.parts[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    found = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            file = module_path(".".join(parts[:i]))
            if file is not None:
                found.add(file)
    return found


def import_closure(start: Path) -> set[Path]:
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imported_files(path))
    return seen


def stage_specs(dvc_yaml: dict) -> dict[str, tuple[str, list[str]]]:
    """``{stage: (module file, deps)}`` of every stage whose command runs ``stages.<name>``."""
    out = {}
    for name, stage in dvc_yaml["stages"].items():
        body = stage.get("do", stage)
        match = re.search(r"python -m (stages\.\w+)", body["cmd"])
        assert match, f"dvc.yaml stage {name}: command runs no stages.<name> module"
        out[name] = (match.group(1), [str(d) for d in body.get("deps", [])])
    return out


def code_files() -> set[Path]:
    return {p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def dep_problems(module: str, deps: list[str]) -> list[str]:
    """What is wrong with ``deps`` for the stage running ``module``: imported files no dep
    covers, and code deps the stage never imports."""
    closure = import_closure(module_path(module))
    code_deps = [d.rstrip("/") for d in deps if d.split("/")[0] in PACKAGES]

    def covered(path: Path) -> bool:
        rel = path.relative_to(ROOT).as_posix()
        return any(rel == d or rel.startswith(d + "/") for d in code_deps)

    problems = [
        f"{p.relative_to(ROOT)} is imported but not a dep"
        for p in sorted(closure)
        if not covered(p)
    ]
    for dep in code_deps:
        files = [
            p
            for p in code_files()
            if covered(p)
            and (
                p.relative_to(ROOT).as_posix() == dep
                or p.relative_to(ROOT).as_posix().startswith(dep + "/")
            )
        ]
        unused = [p for p in files if p not in closure]
        if not files:
            problems.append(f"{dep} is a dep but no such code file")
        elif unused:
            problems.append(
                f"{dep} is a dep but {unused[0].relative_to(ROOT)} is never imported (narrower)"
            )
    return problems


@pytest.fixture(scope="module")
def specs():
    return stage_specs(yaml.safe_load((ROOT / "dvc.yaml").read_text()))


def test_every_stage_depends_on_exactly_the_code_it_imports(specs):
    assert set(specs) == {"prepare", "train", "predict", "validate", "features"}
    problems = {name: dep_problems(*spec) for name, spec in specs.items()}
    assert problems == {name: [] for name in specs}


def test_the_check_fails_when_a_dep_is_removed_or_too_wide(specs):
    module, deps = specs["train"]
    missing = [d for d in deps if d != "ephys2expr/features.py"]
    assert dep_problems(module, missing) == ["ephys2expr/features.py is imported but not a dep"]
    wide = [*deps, "ephys2expr/validate"]
    assert any("ephys2expr/validate is a dep but" in p for p in dep_problems(module, wide))
    # a function-level import counts: validate's read of predictions pulls predict code in
    module, deps = specs["validate"]
    assert "ephys2expr/predict/outputs/read.py" in deps


def floor_of(path: Path) -> tuple[int, str]:
    rel = path.relative_to(ROOT)
    if rel.parts[0] == "stages":
        folder = "stages"
    elif len(rel.parts) == 2:  # ephys2expr/<module>.py
        folder = "" if rel.stem == "__init__" else rel.stem
    else:
        folder = rel.parts[1]
    for level, names in enumerate(FLOORS):
        if folder in names:
            return level, folder
    raise AssertionError(f"{rel}: folder {folder!r} is on no floor (add it to FLOORS)")


def import_edges(files) -> list[tuple[Path, Path]]:
    return [(path, dep) for path in sorted(files) for dep in sorted(imported_files(path))]


def upward(edges) -> list[str]:
    """The edges that import from the same or a higher floor than the importer's, outside
    its own folder (the shared modules of the ground floor may use each other)."""
    bad = []
    for path, dep in edges:
        (level, folder), (dep_level, dep_folder) = floor_of(path), floor_of(dep)
        shared = level == dep_level == 0  # the shared modules use each other
        if dep_folder != folder and dep_level >= level and not shared:
            bad.append(f"{path.relative_to(ROOT)} -> {dep.relative_to(ROOT)}")
    return bad


def test_imports_run_down_the_floors():
    edges = import_edges(code_files())
    assert upward(edges) == []
    # the check sees an arrow up (a reader importing prepare, as there once was) and one
    # across a floor (predict importing train)
    pkg = ROOT / "ephys2expr"
    up = (pkg / "readers" / "allen.py", pkg / "prepare" / "genes.py")
    across = (pkg / "predict" / "run.py", pkg / "train" / "settings.py")
    assert upward([*edges, up, across]) == [
        "ephys2expr/readers/allen.py -> ephys2expr/prepare/genes.py",
        "ephys2expr/predict/run.py -> ephys2expr/train/settings.py",
    ]


def test_every_package_module_is_under_400_lines():
    """A topic that outgrows a file becomes a folder (CONTRIBUTING.md)."""
    long = {
        p.relative_to(ROOT).as_posix(): n
        for p in code_files()
        if (n := len(p.read_text().splitlines())) >= 400
    }
    assert long == {}


def test_every_room_is_under_2500_lines():
    """A folder's own modules (its sub-folders apart) fit in a newcomer's head: a room
    that outgrows 2,500 lines gets sub-rooms by concern (CONTRIBUTING.md)."""
    rooms: dict[str, int] = {}
    for path in code_files():
        folder = path.parent.relative_to(ROOT).as_posix()
        rooms[folder] = rooms.get(folder, 0) + len(path.read_text().splitlines())
    assert {room: n for room, n in rooms.items() if n > 2500} == {}
