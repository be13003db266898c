"""The documentation a newcomer reads first stays short, and no link in it leads nowhere.

- README.md fits one screen (at most 60 lines) and opens with the two commands: `deploy/devnet`
  (a whole pool on a private regtest network) and `tests/run` (the tests).
- README.md links to the documents in docs/ that hold the rest.
- Every relative link in README.md and docs/*.md points to a file or folder of the repository.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 60
FIRST_COMMANDS = ("deploy/devnet", "tests/run")
LINKED_FROM_README = (
    "docs/operating.md",
    "docs/ledger-and-payments.md",
    "docs/api.md",
    "docs/benchmarks.md",
    "docs/architecture.md",
    "docs/adding-a-coin-family.md",
)

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
# [text](target "title") and ![alt](target); the target may be wrapped in <...>.
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[\"'(][^)]*)?\s*\)")
# [label]: target
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def markdown_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def link_targets(text: str) -> list[str]:
    """The link targets of a Markdown text, code blocks and code spans left out."""
    text = _CODE_SPAN.sub("", _FENCE.sub("", text))
    targets = [m.group(1) for m in _INLINE_LINK.finditer(text)]
    targets += [m.group(1) for m in _REFERENCE.finditer(text)]
    return [t[1:-1] if t.startswith("<") and t.endswith(">") else t for t in targets]


def relative_path(target: str) -> str | None:
    """The file part of a relative link; None for a URL, an e-mail address or an anchor in the page."""
    if _SCHEME.match(target) or target.startswith(("#", "//")):
        return None
    path = unquote(target.split("#", 1)[0].split("?", 1)[0])
    return path or None


def relative_links(path: Path) -> list[str]:
    return [p for t in link_targets(path.read_text(encoding="utf-8")) if (p := relative_path(t))]


def test_readme_fits_one_screen():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move details to docs/")


def test_readme_starts_with_the_two_commands():
    lines = [line for line in README.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines[0].startswith("# "), "README.md opens with its title"
    assert lines[1].startswith("```"), "the two commands come right after the title, in a code block"
    commands = [line.split()[0] for line in lines[2:2 + len(FIRST_COMMANDS)]]
    assert tuple(commands) == FIRST_COMMANDS
    assert lines[2 + len(FIRST_COMMANDS)].startswith("```"), "the first code block holds the two commands only"
    for command in FIRST_COMMANDS:
        assert (ROOT / command).is_file(), f"{command} is missing"


def test_readme_links_to_the_docs():
    linked = {str((ROOT / link).resolve().relative_to(ROOT)) for link in relative_links(README)}
    missing = [doc for doc in LINKED_FROM_README if doc not in linked]
    assert not missing, f"README.md does not link to {missing}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files(path: Path):
    broken = [link for link in relative_links(path) if not (path.parent / link).exists()]
    assert not broken, f"{path.relative_to(ROOT)} links to missing files: {broken}"


@pytest.mark.parametrize("text, expected", [
    ("[a](docs/a.md) and [b](<docs/b c.md> \"t\") and ![i](img.png)", ["docs/a.md", "docs/b c.md", "img.png"]),
    ("[x](https://example.org) [y](#here) [z](mailto:a@b.c) <http://127.0.0.1:8080/>", []),
    ("[a](other.md#part) [b](../deploy/pool.example.toml)", ["other.md", "../deploy/pool.example.toml"]),
    ("`[not](a.md)` and\n```\n[not](b.md)\n```\n[ref]: c.md", ["c.md"]),
])
def test_link_extraction(text: str, expected: list[str]):
    assert [p for t in link_targets(text) if (p := relative_path(t))] == expected
