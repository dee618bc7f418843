"""How ids sound on a phone line: the spoken form of a driver's words (what a voice
transcriber writes when a driver reads "EVSE001" off a sticker) and back, and how long
words take to say."""

from __future__ import annotations

import re

__all__ = ["WORDS_PER_MINUTE", "ids_in", "speech_seconds", "spoken_form"]

WORDS_PER_MINUTE = 150
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_DIGIT_WORD = {w: str(i) for i, w in enumerate(DIGITS)} | {"oh": "0", "o": "0"}
_ID = re.compile(r"\b(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z][A-Z0-9-]{2,}\b")


def _spell(token: str) -> str:
    return " ".join(DIGITS[int(ch)] if ch.isdigit() else ch for ch in token if ch != "-")


def spoken_form(text: str) -> str:
    """``text`` as a transcriber hears it read out: ids (capitals with digits, e.g.
    EVSE001, CARD42) spelled letter by letter with digits as words."""
    return _ID.sub(lambda m: _spell(m.group(0)), text)


def ids_in(spoken: str) -> list[str]:
    """The ids in a transcript, written back: runs of single letters and digit words
    ("E V S E zero zero one" or "E V S E double oh one" → EVSE001), and ids already
    written as such."""
    out: list[str] = []
    run: list[str] = []

    def close() -> None:
        joined = "".join(run)
        if len(run) >= 3 and any(c.isdigit() for c in joined) and any(c.isalpha() for c in joined):
            out.append(joined.upper())
        run.clear()

    repeat = 1
    for raw in spoken.split():
        token = raw.strip(".,;:!?\"'()")
        ends = raw != raw.rstrip(".,;:!?")
        low = token.lower()
        if len(token) == 1 and token.isalpha() and (token.isupper() or low == "a"):
            run.append(token.upper())
        elif low in ("double", "triple") and not ends:
            repeat = 2 if low == "double" else 3
            continue
        elif low in _DIGIT_WORD and (run or low not in ("o", "oh") or repeat > 1):
            run.extend([_DIGIT_WORD[low]] * repeat)
        elif token.isdigit() and run:
            run.append(token)
        else:
            close()
            if _ID.fullmatch(token):
                out.append(token)
        repeat = 1
        if ends:
            close()
    close()
    return out


def speech_seconds(text: str) -> float:
    """How long ``text`` takes to say at :data:`WORDS_PER_MINUTE`."""
    return len(text.split()) * 60.0 / WORDS_PER_MINUTE
