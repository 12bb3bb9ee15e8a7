from pathlib import Path

from fabric.choices import state_machine_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_publishes_the_state_machine_the_code_enforces():
    assert state_machine_markdown() in README.read_text()
