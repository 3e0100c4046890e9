"""The documentation in ``docs/`` stays true to the tree it describes.

- Every citation ``docs/<file>.md, <section>`` in the package, the tests, the benchmarks, the examples and the docs
  themselves names a file of ``docs/`` and, where it names sections, headings of that file. A section is cited by
  its label (``docs/providers.md, A.2``, ``docs/reliability.md, 8``, ``docs/providers.md, section C``) or by the
  start of its title in double quotes (``docs/providers.md, "Mapping status words"``); several may follow one
  another (``docs/providers.md, A.2, B.2 and C.2``).
- Every test named in the docs as ``file.py::test_name`` (relative to ``tests/``) exists.
- ``docs/architecture.md`` names every module and subpackage of ``hailuo_async/`` and every test file.
- The numbered checklist of ``docs/reliability.md, 8`` holds every item ``tests/engine/test_reliability.py`` cites.
- Nothing in ``hailuo_async/`` or ``tests/`` refers to a document or folder outside the repository.

All tests are pure: they read files of the working tree and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
SCANNED = ("hailuo_async", "tests", "benchmarks", "examples", "docs")
"""Folders whose files may cite the docs."""
TEXT_SUFFIXES = frozenset({".py", ".md", ".txt", ".toml", ".cfg", ".ini", ".json", ".yml", ".yaml", ".sh", ".rst"})

# A section token: a quoted title, a letter with numbers (A.2), a bare letter after "section" (section C), or a
# number (8, 5.3). It must end at a boundary, so that "C.5." at the end of a sentence still reads as C.5.
_TOKEN = r'(?:"[^"\n]{2,80}"|(?:sections?\s+)?[A-Z](?:\.\d+)+|sections?\s+[A-Z]|(?:sections?\s+)?\d+(?:\.\d+)*)'
_END = r"""(?=$|[\s,;:)\]`'"*]|\.(?!\w))"""
CITATION = re.compile(
    rf"(?<![\w/.-])docs/(?P<file>[\w.-]+?\.md)(?P<sections>(?:(?:,\s*|\s+and\s+|\s+)(?:{_TOKEN}){_END})*)",
    re.MULTILINE,
)
SECTION = re.compile(r'"(?P<title>[^"\n]+)"|(?:sections?\s+)?(?P<label>[A-Z](?:\.\d+)*|\d+(?:\.\d+)*)')
HEADING = re.compile(r"^(#{1,6})\s+(?P<text>.+?)\s*#*\s*$")
HEADING_LABEL = re.compile(r"^(?P<label>[A-Z](?:\.\d+)*|\d+(?:\.\d+)*)\.?\s+(?P<title>.*)$")
DOC_NAME = re.compile(r"(?<![\w/.-])(?P<name>providers|reliability|style|architecture)\.md\b")
TEST_REFERENCE = re.compile(r"(?P<file>(?:\w+/)*test_\w+\.py)::(?P<name>test_\w+)")


class Citation(NamedTuple):
    source: str
    line: int
    file: str
    sections: tuple[str, ...]


def text_files(*folders: str) -> Iterator[Path]:
    """Every text file under the given folders of the repository (no caches, no hidden folders)."""
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*")):
            parts = path.relative_to(REPO).parts
            if any(part.startswith(".") or part == "__pycache__" for part in parts):
                continue
            if path.is_file() and path.suffix in TEXT_SUFFIXES:
                yield path


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def citations() -> list[Citation]:
    found: list[Citation] = []
    for path in text_files(*SCANNED):
        text = read(path)
        for match in CITATION.finditer(text):
            sections = tuple(m.group("title") or m.group("label") for m in SECTION.finditer(match.group("sections")))
            line = text.count("\n", 0, match.start()) + 1
            found.append(Citation(str(path.relative_to(REPO)), line, match.group("file"), sections))
    return found


def headings(doc: Path) -> list[tuple[str | None, str]]:
    """``(label, title)`` of every heading of a Markdown file, outside fenced code blocks."""
    result: list[tuple[str | None, str]] = []
    fenced = False
    for line in read(doc).splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        match = HEADING.match(line) if not fenced else None
        if match is None:
            continue
        text = match.group("text").strip()
        labelled = HEADING_LABEL.match(text)
        if labelled is not None:
            result.append((labelled.group("label"), labelled.group("title")))
        else:
            result.append((None, text))
    return result


def has_section(doc: Path, section: str) -> bool:
    """Whether ``doc`` has a heading labelled ``section`` or whose title starts with it (case-insensitive)."""
    wanted = section.strip().lower()
    for label, title in headings(doc):
        if label is not None and label.lower() == wanted:
            return True
        full = f"{label} {title}" if label is not None else title
        if any(text.strip().lower().startswith(wanted) for text in (title, full)):
            return True
    return False


CITATIONS = citations()


def test_citations_are_found() -> None:
    # The scan itself works: the codecs cite their sections, so a broken pattern cannot pass silently.
    cited = {(c.source, c.file) for c in CITATIONS if c.sections}
    for source in (
        "hailuo_async/providers/apimart.py",
        "hailuo_async/providers/_base.py",
        "tests/engine/test_reliability.py",
    ):
        assert any(path == source for path, _ in cited), f"no sectioned citation found in {source}"
    assert sum(len(c.sections) for c in CITATIONS) >= 30


@pytest.mark.parametrize("citation", CITATIONS, ids=[f"{c.source}:{c.line}" for c in CITATIONS])
def test_every_citation_names_an_existing_doc_and_section(citation: Citation) -> None:
    doc = DOCS / citation.file
    assert doc.is_file(), f"{citation.source}:{citation.line} cites docs/{citation.file}, which does not exist"
    missing = [section for section in citation.sections if not has_section(doc, section)]
    assert not missing, f"{citation.source}:{citation.line} cites docs/{citation.file}, {missing}: no such heading"


def test_docs_are_cited_by_their_path_in_the_repository() -> None:
    # A bare "providers.md" once meant a file outside the repository; every mention now says docs/.
    bare = []
    for path in text_files(*SCANNED):
        if path == Path(__file__).resolve():
            continue  # this file handles the names themselves
        text = read(path)
        for match in DOC_NAME.finditer(text):
            before = text[max(0, match.start() - 5) : match.start()]
            if before != "docs/":
                line = text.count("\n", 0, match.start()) + 1
                bare.append(f"{path.relative_to(REPO)}:{line}: {match.group(0)}")
    assert not bare, "cite the docs as docs/<file>.md:\n" + "\n".join(bare)


def test_every_test_named_in_the_docs_exists() -> None:
    named = [(doc, m) for doc in sorted(DOCS.glob("*.md")) for m in TEST_REFERENCE.finditer(read(doc))]
    assert named, "the docs name no test (file.py::test_name)"
    problems = []
    for doc, match in named:
        test_file = REPO / "tests" / match.group("file")
        where = f"docs/{doc.name}: {match.group(0)}"
        if not test_file.is_file():
            problems.append(f"{where}: no file tests/{match.group('file')}")
        elif not re.search(rf"^\s*(?:async\s+)?def {match.group('name')}\(", read(test_file), re.MULTILINE):
            problems.append(f"{where}: no such test")
    assert not problems, "\n".join(problems)


def test_architecture_names_every_module_and_subpackage() -> None:
    text = read(DOCS / "architecture.md")
    package = REPO / "hailuo_async"
    expected = [path.name for path in package.glob("*.py")]
    expected += [f"{path.name}/" for path in package.iterdir() if (path / "__init__.py").is_file()]
    missing = sorted(name for name in expected if name not in text)
    assert not missing, f"docs/architecture.md does not describe {missing}"


def test_architecture_lists_every_test_file() -> None:
    text = read(DOCS / "architecture.md")
    tests = REPO / "tests"
    names = [path.relative_to(tests).as_posix() for path in tests.rglob("test_*.py") if "simulator" not in path.parts]
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing, f"the Tests section of docs/architecture.md does not list {missing}"


def test_reliability_checklist_holds_every_item_the_tests_cite() -> None:
    doc = read(DOCS / "reliability.md")
    section = doc.split("\n## 8. ", 1)[1].split("\n## ", 1)[0]
    items = {int(number) for number in re.findall(r"^(\d+)\. \*\*", section, re.MULTILINE)}
    assert items == set(range(1, 29))
    cited = {
        int(n) for n in re.findall(r"^# (\d+)\. ", read(REPO / "tests" / "engine/test_reliability.py"), re.MULTILINE)
    }
    assert cited and cited <= items


def test_providers_doc_keeps_the_sections_the_code_cites() -> None:
    doc = DOCS / "providers.md"
    sections = [f"A.{n}" for n in range(1, 8)] + [f"B.{n}" for n in range(1, 7)] + [f"C.{n}" for n in range(1, 9)]
    sections += ["A", "B", "C", "D", "Camera directives", "Mapping status words", "Idempotency across providers"]
    sections += ["Additions"]
    assert [s for s in sections if not has_section(doc, s)] == []


# Paths outside the repository, assembled here so that this file does not contain them itself.
OUTSIDE = (
    "/".join(("shared", "docs")),
    "/".join(("shared", "seeds")),
    "/".join(("..", "shared")),
    "/".join(("", "work", "shared")),
    "/".join(("..", "seeds")),
)


def test_nothing_refers_outside_the_repository() -> None:
    found = []
    for path in text_files("hailuo_async", "tests"):
        text = read(path)
        for needle in OUTSIDE:
            if needle in text:
                line = text.count("\n", 0, text.index(needle)) + 1
                found.append(f"{path.relative_to(REPO)}:{line}: {needle}")
    assert not found, "\n".join(found)
