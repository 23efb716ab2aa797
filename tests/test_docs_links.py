"""The repository's markdown pages link only to files and headings that exist: the README
sends readers to benchmarks/README.md's sections, and a moved section or file must not leave
a dead link behind."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "benchmarks/README.md", "data/README.md")
LINK = re.compile(r"\]\(([^)\s]+)\)")
"""A markdown link's or image's target: ``[text](target)``, ``![alt](target)``."""


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors of ``page``'s headings: lower case, punctuation but ``-`` and ``_``
    dropped, spaces as ``-`` (outside fenced code blocks)."""
    anchors, fenced = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#+ (.*)", line)):
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_heading_anchors_read_as_github_writes_them(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Measured results\n## DMP + RL\n```\n# not a heading\n```\n## On a GPU\n")
    assert heading_anchors(page) == {"measured-results", "dmp--rl", "on-a-gpu"}


@pytest.mark.parametrize("name", PAGES)
def test_every_relative_link_reaches_a_file_and_heading(name):
    page = ROOT / name
    dead = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://|mailto:", target):
            continue  # off-site: not checked (nothing downloads here)
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            dead.append(f"{target} (no such file)")
        elif anchor and anchor not in heading_anchors(linked):
            dead.append(f"{target} (no heading #{anchor} in {linked.relative_to(ROOT)})")
    assert not dead, f"{name}: dead links: {', '.join(dead)}"
