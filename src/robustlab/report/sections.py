"""Keep what the runs at hand cannot say: the report's sections of profiles that were not reported.

A reviewer who runs only the quick profile must not erase the committed paper-profile results from
README.md, paper/REPRODUCTION.md and paper/report.tex. Each of those files is a head, one section per
profile (each opened by a heading line that names its profile) and a tail; a rebuild replaces the
sections of the profiles it reports and keeps every other section of the existing file byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """How one generated file marks its profile sections."""

    heading: re.Pattern  # a line opening a section; group 1 is the profile's name
    tail: str | None  # the text the last section stops before (None: the end of the text)
    separator: str  # between sections, after each one's trailing blank lines are stripped
    ending: str  # after the last section


MARKDOWN = Layout(re.compile(r"^## Profile `([^`]+)`$", re.M), None, "\n\n", "\n")
LATEX = Layout(re.compile(r"^\\section\{Results: profile (.+)\}$", re.M), "\\end{document}", "", "")
README = Layout(re.compile(r"^\*\*Profile `([^`]+)`\*\*", re.M), None, "\n\n", "\n")


def split(text: str, layout: Layout) -> tuple[str, dict[str, str], str]:
    """(head, profile -> section text, tail)."""
    end = text.rfind(layout.tail) if layout.tail else len(text)
    end = len(text) if end < 0 else end
    starts = [m for m in layout.heading.finditer(text) if m.start() < end]
    if not starts:
        return text[:end], {}, text[end:]
    bounds = [m.start() for m in starts] + [end]
    sections = {m.group(1): text[bounds[i] : bounds[i + 1]] for i, m in enumerate(starts)}
    return text[: bounds[0]], sections, text[end:]


def order(profiles) -> list[str]:
    return sorted(profiles, key=lambda name: (name != "paper", name))


def merge(new: str, old: str | None, reported: list[str], layout: Layout) -> str:
    """``new`` (sections of the reported profiles only) with the other profiles' sections of ``old``."""
    if not old:
        return new
    head, fresh, tail = split(new, layout)
    kept = {p: s for p, s in split(old, layout)[1].items() if p not in reported}
    if not kept:
        return new
    sections = {**kept, **fresh}
    if layout.separator:  # sections joined by blank lines: the last one of a file has none after it
        body = layout.separator.join(sections[p].rstrip() for p in order(sections)) + layout.ending
    else:
        body = "".join(sections[p] for p in order(sections))
    return head + body + tail


def existing(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None
