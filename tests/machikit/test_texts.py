"""The message catalogue survives a Windows console: every string encodes in cp932.

On Windows, output redirected to a file or shown in an old console is encoded as cp932
(Shift_JIS with Microsoft's extensions). A character outside it ('—', '✓', '▶', '≤')
stops the program with UnicodeEncodeError instead of printing the message.
"""

from machikit.texts import TEXTS


def _not_cp932(text: str) -> list[str]:
    bad = []
    for char in text:
        try:
            char.encode("cp932")
        except UnicodeEncodeError:
            bad.append(char)
    return bad


def test_every_text_encodes_in_cp932() -> None:
    problems = []
    for key, pair in TEXTS.items():
        for language, text in zip(("ja", "en"), pair, strict=True):
            bad = _not_cp932(text)
            if bad:
                problems.append(f"{key} ({language}): {' '.join(map(repr, bad))}")
    assert not problems, "not in cp932 (use '-', 'ー', '○', '×', '→'):\n" + "\n".join(problems)


def test_the_check_finds_what_windows_cannot_print() -> None:
    assert _not_cp932("完了 — ✓ ▶ ≤ █") == ["—", "✓", "▶", "≤", "█"]
    assert _not_cp932("完了 - ○ × → … ①") == []


def test_every_entry_is_a_pair_of_strings() -> None:
    for key, pair in TEXTS.items():
        assert isinstance(pair, tuple) and len(pair) == 2, key
        assert all(isinstance(text, str) and text for text in pair), key
