"""The docs speak of the project alone.

A town that clones machikit gets the repository and nothing else: no issue tracker notes
("issue 6", "the issue note"), no folders next to the checkout ("../shared", "/work/"), and
no `pip install machikit[...]` (machikit is not on the public package index). Every Markdown
file a reader opens in the repository is checked.
"""

import re
from pathlib import Path

from tests.conftest import REPO

DOCS = (
    "README.md",
    "docs/*.md",
    "hardware/*.md",
    "firmware/*.md",
    "deploy/README.md",
    "requirements/README.md",
    "collector/demo_data/README.md",
    "kits/**/*.md",
)
FORBIDDEN = (
    (re.compile(r"issue\s*#?\d+", re.IGNORECASE), "an issue number"),
    (re.compile(r"issue notes?", re.IGNORECASE), "the issue notes"),
    (re.compile(r"provisioning issue", re.IGNORECASE), "an issue"),
    (re.compile(r"\.\./shared"), "a path outside the repository"),
    (re.compile(r"/work/"), "a path outside the repository"),
    # machikit is not on the public package index: quickstart.py, the Pi's lock or the image
    (re.compile(r"pip install ['\"]?machikit\["), "machikit from the public index"),
)


def doc_files() -> list[Path]:
    return sorted({path for pattern in DOCS for path in REPO.glob(pattern)})


def outside_references(text: str) -> list[tuple[int, str, str]]:
    found = []
    for pattern, what in FORBIDDEN:
        for match in pattern.finditer(text):
            found.append((text.count("\n", 0, match.start()) + 1, match.group(), what))
    return sorted(found)


def test_the_check_itself() -> None:
    text = ("Done (issue 4).\nSee Issue #12 and the issue note.\n`../shared/data` or /work/x\n"
            "pip install 'machikit[pi]'\n")
    assert [(line, hit) for line, hit, _ in outside_references(text)] == [
        (1, "issue 4"), (2, "Issue #12"), (2, "issue note"), (3, "../shared"), (3, "/work/"),
        (4, "pip install 'machikit[")]
    assert outside_references("a known issue; docs/workshop.md; ../docs/api.md; "
                              "pip install esptool; pip install --no-deps .") == []


def test_docs_speak_of_the_project_alone() -> None:
    files = doc_files()
    assert REPO / "README.md" in files and REPO / "docs" / "design.md" in files
    problems = [f"{path.relative_to(REPO)}:{line}: {hit!r} ({what})"
                for path in files
                for line, hit, what in outside_references(path.read_text("utf-8"))]
    assert not problems, "\n".join(problems)
