"""One term per thing: docs/glossary.md's variants appear nowhere a town employee reads.

The glossary's tables are the only list: a row names the term to use and the variants not
to use (使わない語). This test reads them and looks for the variants in the user-facing
strings (machikit/texts.py TEXTS, the public map's files in collector/web/) and in the docs.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from machikit.texts import TEXTS
from tests.conftest import REPO

GLOSSARY = REPO / "docs" / "glossary.md"
NONE = {"", "—", "-", "なし"}

# The docs staff read (README.md and docs/workshop.md too). docs/glossary.md itself names
# the variants on purpose and is left out.
DOCS = (
    "README.md",
    "docs/*.md",
    "hardware/*.md",
    "firmware/README.md",
    "deploy/README.md",
    "collector/demo_data/README.md",
)
MAP_SUFFIXES = {".js", ".html", ".css"}


@dataclass(frozen=True)
class Row:
    terms: tuple[str, ...]    # 使う語 (a cell may hold two: "オンライン / オフライン")
    english: str
    avoid: tuple[str, ...]    # 使わない語


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _words(cell: str, separators: str) -> tuple[str, ...]:
    parts = re.split(f"[{separators}]", cell.replace("`", ""))
    return tuple(p.strip() for p in parts if p.strip() not in NONE)


def _tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table: (header cells, body rows)."""
    tables: list[tuple[list[str], list[list[str]]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if (lines[i].lstrip().startswith("|") and i + 1 < len(lines)
                and re.fullmatch(r"\s*\|[\s:|-]+\|\s*", lines[i + 1])):
            header, body = _cells(lines[i]), []
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                body.append(_cells(lines[i]))
                i += 1
            tables.append((header, body))
        else:
            i += 1
    return tables


def glossary() -> tuple[list[Row], tuple[str, ...]]:
    """The term rows, and the names kept as other software shows them."""
    rows: list[Row] = []
    kept: list[str] = []
    for header, body in _tables(GLOSSARY.read_text("utf-8")):
        if "使わない語" in header:
            term, english, avoid = (header.index(name)
                                    for name in ("使う語", "English", "使わない語"))
            rows += [Row(_words(r[term], "、/"), r[english], _words(r[avoid], "、,，"))
                     for r in body]
        elif "そのまま書く語" in header:
            kept += [r[header.index("そのまま書く語")].replace("`", "") for r in body]
    return rows, tuple(kept)


def _allowed_here(text: str, start: int, variant: str, allowed: tuple[str, ...]) -> bool:
    """The variant at `start` is only part of a longer allowed word (ブローカ in ブローカー)."""
    for word in allowed:
        offset = word.find(variant)
        while offset >= 0:
            begin = start - offset
            if begin >= 0 and text[begin:begin + len(word)] == word:
                return True
            offset = word.find(variant, offset + 1)
    return False


def variants_in(text: str, rows: list[Row], kept: tuple[str, ...]) -> list[tuple[int, str, str]]:
    """(line number, variant, term to use) for every variant in text."""
    allowed = tuple(t for row in rows for t in row.terms) + kept
    found = []
    for row in rows:
        for variant in row.avoid:
            if variant.isascii():  # English: whole words, any case
                found_at = re.finditer(r"(?<![A-Za-z])" + re.escape(variant) + r"(?![A-Za-z])",
                                       text, re.IGNORECASE)
            else:
                found_at = re.finditer(re.escape(variant), text)
            for match in found_at:
                if not _allowed_here(text, match.start(), variant, allowed):
                    line = text.count("\n", 0, match.start()) + 1
                    term = row.english if variant.isascii() else " / ".join(row.terms)
                    found.append((line, variant, term))
    return sorted(found)


def doc_files() -> list[Path]:
    files = {path for pattern in DOCS for path in REPO.glob(pattern)}
    return sorted(files - {GLOSSARY})


def map_files() -> list[Path]:
    web = REPO / "collector" / "web"
    return sorted(p for p in web.rglob("*")
                  if p.suffix in MAP_SUFFIXES and "vendor" not in p.relative_to(web).parts)


def _report(where: str, hits: list[tuple[int, str, str]]) -> list[str]:
    return [f"{where}:{line}: 「{variant}」→「{term}」" for line, variant, term in hits]


def test_the_glossary_has_terms_and_variants() -> None:
    rows, kept = glossary()
    assert len(rows) >= 20
    assert all(row.terms and row.english for row in rows), rows
    variants = [v for row in rows for v in row.avoid]
    assert {"置き忘れ", "移動販売車", "デバイス", "収集サーバー"} <= set(variants)
    assert len(variants) == len(set(variants)), "a variant listed twice"
    terms = {t for row in rows for t in row.terms}
    assert not terms & set(variants), "a word is both a term and a variant"
    assert "デバイスマネージャー" in kept


def test_the_check_itself() -> None:
    rows, kept = glossary()
    text = ("ブローカーとブローカ\nプリンターの取り忘れブザー、置き忘れ\n"
            "Windows のデバイスマネージャー\nMobile stall")
    assert [(line, v) for line, v, _ in variants_in(text, rows, kept)] == [
        (1, "ブローカ"), (2, "置き忘れ"), (4, "mobile stall")]


def test_no_variant_in_the_user_interface_texts() -> None:
    rows, kept = glossary()
    problems = []
    for key, pair in TEXTS.items():
        for language, text in zip(("ja", "en"), pair, strict=True):
            problems += [f"texts.py {key} ({language}): 「{v}」→「{t}」"
                         for _, v, t in variants_in(text, rows, kept)]
    assert not problems, "\n".join(problems)


def test_no_variant_on_the_public_map() -> None:
    rows, kept = glossary()
    files = map_files()
    assert files
    problems = []
    for path in files:
        hits = variants_in(path.read_text("utf-8"), rows, kept)
        problems += _report(str(path.relative_to(REPO)), hits)
    assert not problems, "\n".join(problems)


def test_no_variant_in_the_docs() -> None:
    rows, kept = glossary()
    files = doc_files()
    assert REPO / "README.md" in files and REPO / "docs" / "workshop.md" in files
    problems = []
    for path in files:
        hits = variants_in(path.read_text("utf-8"), rows, kept)
        problems += _report(str(path.relative_to(REPO)), hits)
    assert not problems, "\n".join(problems)
