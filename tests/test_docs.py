"""The repository is self-contained: nothing points outside it, and doc links resolve.

- No tracked file names a path outside the repository (``/work/…``, ``shared/…``) or a
  design document that is not in it (a bare ``DESIGN.md``, the names of the notes
  threadkit's own ``docs/`` replaced).
- Every relative link in a tracked Markdown file resolves to a file in the repository,
  and its ``#fragment`` to a heading of the target (GitHub's heading anchors).
- Every ``docs/<page>.md`` named in a tracked file exists, and every section it cites
  (``docs/design.md §7.1``, ``[design.md](design.md) §7``) is a numbered heading there.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()

# Names of places outside the repository. This file is the one that must spell them out,
# so it is not scanned for them.
OUTSIDE = re.compile(
    r"/work/"
    r"|(?<![\w.-])shared/"
    r"|\bDESIGN\b"
    r"|threads-api\.md"
    r"|py-libp2p-notes"
    r"|threaddb-reference"
)

_SKIPPED_DIRS = {
    ".git",
    ".venv",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "build",
    "dist",
}
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_LINK = re.compile(  # [text](target "title"), ![alt](target); text may hold [x]
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)"
)
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")
_DOC_NAME = re.compile(r"(?<![\w/.-])docs/[\w.-]+\.md")
# A page name, as a path or as a Markdown link, followed by one or more section numbers:
# "docs/design.md §6, §7", "``docs/libp2p-notes.md`` §7", "[design.md](design.md) §7.1",
# "docs/design.md §6-7".
_CITATION = re.compile(
    r"(?<![\w/.-])((?:docs/)?[\w-]+\.md)(?:`{1,2}|\]\([^)]*\))?"
    r"((?:\s*(?:,|and)?\s*§\s?\d+(?:\.\d+)*(?:-\d+)?)+)"
)
_SECTION = re.compile(r"§\s?(\d+(?:\.\d+)*)(?:-(\d+))?")
_NUMBERED = re.compile(r"^(\d+(?:\.\d+)*)\.?(?:\s|$)")


def tracked_files() -> list[str]:
    """The repository's files, as POSIX paths relative to the root.

    In a git checkout: the tracked files and the new ones git does not ignore (so a file
    is checked before it is committed). Otherwise every file under the root except
    virtual environments, caches and installed packages.
    """
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        out = b""
    if out:
        names = [n for n in out.decode("utf-8").split("\0") if n]
        return sorted(n for n in names if (ROOT / n).is_file())
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [
            d
            for d in dirnames
            if d not in _SKIPPED_DIRS
            and not d.endswith(".egg-info")
            and not (Path(dirpath) / d).is_symlink()
        ]
        for name in filenames:
            found.append((Path(dirpath) / name).relative_to(ROOT).as_posix())
    return sorted(found)


def read_text(path: str) -> str | None:
    """The file's text, or None for a binary file."""
    data = (ROOT / path).read_bytes()
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def text_files() -> Iterator[tuple[str, str]]:
    for path in tracked_files():
        text = read_text(path)
        if text is not None:
            yield path, text


def markdown_files() -> list[str]:
    return [p for p in tracked_files() if p.endswith(".md")]


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """Markdown lines outside fenced code blocks, with code spans blanked out."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, _CODE_SPAN.sub("", line)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link targets and punctuation dropped, lower case.

    >>> slug("7.1 Deterministic convergence")
    '71-deterministic-convergence'
    >>> slug("`threadkit daemon`: ThreadDB's remote API")
    'threadkit-daemon-threaddbs-remote-api'
    """
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def headings(path: Path) -> list[str]:
    """The heading texts of a Markdown file, in order, outside fenced code blocks."""
    found = []
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            found.append(match.group(2))
    return found


def anchors(path: Path) -> set[str]:
    """Every ``#fragment`` that reaches a heading of ``path`` (repeats get ``-1``, ``-2``)."""
    seen: dict[str, int] = {}
    result = set()
    for heading in headings(path):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def section_numbers(path: Path) -> set[str]:
    """The numbers of the numbered headings: ``{"1", "7", "7.1", …}``."""
    numbers = set()
    for heading in headings(path):
        if match := _NUMBERED.match(heading):
            numbers.add(match.group(1))
    return numbers


def links(text: str) -> Iterator[tuple[int, str]]:
    for number, line in prose_lines(text):
        for inline in _INLINE_LINK.finditer(line):
            yield number, inline.group(1)
        if reference := _REFERENCE_LINK.match(line):
            yield number, reference.group(1)


def link_problem(source: str, target: str) -> str | None:
    """What is wrong with a link from the Markdown file ``source``, or None."""
    if not target or _SCHEME.match(target):
        return None  # a URL (http:, mailto:, …) is not a file of this repository
    path_part, _, fragment = target.partition("#")
    if path_part:
        resolved = ((ROOT / source).parent / path_part).resolve()
        if not resolved.is_relative_to(ROOT):
            return f"{target} leads outside the repository"
        if not resolved.exists():
            return f"{target} does not exist"
    else:
        resolved = ROOT / source
    if fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
        return f"{target}: no heading with the anchor #{fragment} in {resolved.name}"
    return None


def cited_page(source: str, name: str) -> Path:
    """The page a citation names: ``docs/…`` from the root, a bare name beside ``source``."""
    if name.startswith("docs/"):
        return ROOT / name
    return (ROOT / source).parent / name


# --------------------------------------------------------------------------- tests


def test_the_file_list_is_the_repository() -> None:
    files = tracked_files()
    assert {"README.md", "docs/design.md", THIS_FILE} <= set(files)
    assert not any(p.startswith((".venv/", "tests/js/node_modules/")) for p in files)


def test_no_file_points_outside_the_repository() -> None:
    offenders = [
        f"{path}:{number}: {line.strip()}"
        for path, text in text_files()
        if path != THIS_FILE
        for number, line in enumerate(text.splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not offenders, "references to files outside the repository:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    "line",
    [
        "See /work/shared/DESIGN.md.",
        "the contract is shared/threads-api.md §8",
        "(DESIGN.md §7.1)",
        "# threadkit adds it (DESIGN §6)",
        "see ``py-libp2p-notes.md``",
        "(threaddb-reference §10)",
    ],
)
def test_outside_references_are_recognised(line: str) -> None:
    assert OUTSIDE.search(line)


@pytest.mark.parametrize(
    "line",
    [
        "(docs/design.md §7.1)",
        "a thread is shared by its peers",
        "threadkit/shared_state.py",
        "tests/net/test_node.py",
    ],
)
def test_in_repository_references_are_not_flagged(line: str) -> None:
    assert not OUTSIDE.search(line)


def test_relative_links_in_markdown_resolve() -> None:
    problems = []
    for source in markdown_files():
        text = (ROOT / source).read_text(encoding="utf-8")
        for number, target in links(text):
            problem = link_problem(source, target)
            if problem:
                problems.append(f"{source}:{number}: {problem}")
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_named_doc_pages_exist() -> None:
    missing = sorted(
        {
            f"{path}: {name}"
            for path, text in text_files()
            if path != THIS_FILE
            for name in _DOC_NAME.findall(text)
            if not (ROOT / name).is_file()
        }
    )
    assert not missing, "doc pages named but not in docs/:\n" + "\n".join(missing)


def test_cited_sections_exist() -> None:
    problems = []
    cited = 0
    for path, text in text_files():
        if path == THIS_FILE:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for match in _CITATION.finditer(line):
                page = cited_page(path, match.group(1))
                if not page.is_file():
                    problems.append(f"{path}:{number}: {match.group(1)} does not exist")
                    continue
                numbers = section_numbers(page)
                for first, last in _SECTION.findall(match.group(2)):
                    wanted = [first]
                    if last:
                        wanted = [str(n) for n in range(int(first), int(last) + 1)]
                    for section in wanted:
                        cited += 1
                        if section not in numbers:
                            problems.append(
                                f"{path}:{number}: {match.group(1)} has no section {section}"
                            )
    assert not problems, "citations of missing sections:\n" + "\n".join(problems)
    assert cited > 0  # the code does cite the docs; a regex that finds nothing is broken


def test_link_checks_catch_broken_links(tmp_path: Path) -> None:
    assert link_problem("docs/design.md", "formats.md") is None
    assert link_problem("docs/design.md", "formats.md#records") is None
    assert link_problem("docs/design.md", "#71-deterministic-convergence") is None
    assert link_problem("docs/design.md", "https://example.org/x.md") is None
    assert "does not exist" in str(link_problem("docs/design.md", "no-such-page.md"))
    assert "no heading" in str(link_problem("docs/design.md", "formats.md#no-such-heading"))
    assert "outside" in str(link_problem("README.md", "../elsewhere.md"))
    text = '[a](one.md) ![b](img/two.png "title")\n```\n[c](fenced.md)\n```\n`[d](code.md)`\n'
    assert list(links(text)) == [(1, "one.md"), (1, "img/two.png")]


def test_citation_pattern_reads_every_form() -> None:
    forms = {
        "(docs/design.md §6, §7)": ("docs/design.md", ["6", "7"]),
        "(``docs/libp2p-notes.md`` §7)": ("docs/libp2p-notes.md", ["7"]),
        "([design.md](design.md) §7.1)": ("design.md", ["7.1"]),
        "(docs/design.md §6-7)": ("docs/design.md", ["6"]),
        "docs/wire-contract.md §8:": ("docs/wire-contract.md", ["8"]),
    }
    for text, (page, sections) in forms.items():
        match = _CITATION.search(text)
        assert match is not None, text
        assert match.group(1) == page
        assert [first for first, _ in _SECTION.findall(match.group(2))] == sections
    assert section_numbers(ROOT / "docs" / "design.md") >= {"1", "7", "7.1", "9", "10"}
