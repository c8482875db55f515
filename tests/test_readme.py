"""The README's two commands are the ones CI and users run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- commands -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no <!-- commands --> block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_gives_exactly_two_commands_pipeline_then_tests():
    pipeline, tests = readme_commands()
    assert "dvc pull" in pipeline and pipeline.endswith("dvc repro")
    assert "dvc pull" in tests and tests.endswith("pytest")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"^TEST_COMMAND='(.*)'$", ci, re.M).group(1)
    assert command == readme_commands()[1]
