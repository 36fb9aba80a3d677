"""Markdown and LaTeX of the report: grids, booktabs tables, escaping, and the claims table in both."""

from __future__ import annotations

import re

import pandas as pd

from robustlab.report.tables import num as _num


def _ci(row) -> str:
    return "-" if row["n"] == 0 else f"[{_num(row['ci_low'])}, {_num(row['ci_high'])}]"


def _cells(row) -> list[str]:
    return [
        row["claim"],
        row["where"],
        _num(row["claimed"]),
        _num(row["mean"]),
        _ci(row),
        str(row["n"]),
        row["protocol"] or "-",
        row["ci_status"],
        row["verdict"],
    ]


HEADER = [
    "claim",
    "where",
    "claimed",
    "reproduced mean",
    "95% CI",
    "n seeds",
    "protocol of the runs",
    "CI status",
    "verdict",
]


def markdown_grid(header: list[str], rows: list[list]) -> str:
    """Every Markdown table of the report: the claims and the other measured results."""
    cell = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown_table(frame: pd.DataFrame) -> str:
    return markdown_grid(HEADER, [_cells(row) for _, row in frame.iterrows()])


TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


# The report's prose uses a few Greek letters and symbols; pdflatex with T1 fonts has no glyph for them as text.
TEX_UNICODE = {
    "κ": r"$\kappa$",
    "ρ": r"$\rho$",
    "ε": r"$\varepsilon$",
    "σ": r"$\sigma$",
    "∞": r"$\infty$",
    "≤": r"$\le$",
    "≥": r"$\ge$",
    "×": r"$\times$",
    "−": "-",
    "–": "--",
    "—": "---",
    "’": "'",
    "≈": r"$\approx$",
}


def tex(text) -> str:
    escaped = "".join(TEX_SPECIAL.get(ch, TEX_UNICODE.get(ch, ch)) for ch in str(text))
    return escaped.replace("p\u0302", r"$\hat{p}$")  # p-hat, written as p + combining circumflex


GRID_CELL = re.compile(r"(?<!\\)\|")  # a Markdown grid's cell separator (not an escaped \|)


def markdown_tex(text: str) -> list[str]:
    """A Markdown section of robustlab.report.inherent in LaTeX: '## ' headings become subsections, '| ' grids
    booktabs tables, paragraphs prose; **bold** becomes bold. The two formats then say the same thing."""
    lines: list[str] = []
    grid: list[str] = []

    def flush() -> None:
        if grid:
            rows = [[c.strip().replace("\\|", "|") for c in GRID_CELL.split(g.strip())[1:-1]] for g in grid]
            head, body = rows[0], rows[2:]  # rows[1] is the ---|--- rule
            lines.extend(
                [
                    r"\begin{table}[H]\centering",
                    tex_grid([tex(h) for h in head], body, "l" * len(head)).rstrip(),
                    r"\end{table}",
                    "",
                ]
            )
            grid.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            grid.append(line)
            continue
        flush()
        if line.startswith("## "):
            lines += [rf"\subsection{{{tex(line[3:].strip())}}}", ""]
        elif line.strip():
            parts = re.split(r"\*\*(.+?)\*\*", line.replace("`", ""))  # odd parts were **bold**
            lines += ["".join(rf"\textbf{{{tex(x)}}}" if i % 2 else tex(x) for i, x in enumerate(parts)), ""]
    flush()
    return lines


def tex_grid(head: list[str], rows: list[list], spec: str) -> str:
    """Every booktabs tabular of the report (no float); ``head`` is LaTeX already, the cells are escaped."""
    lines = [
        r"{\footnotesize\setlength{\tabcolsep}{3pt}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(head) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(tex(c) for c in row) + r" \\" for row in rows]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}}"]) + "\n"


def tex_table(frame: pd.DataFrame) -> str:
    """The claims tabular, for \\input in a table or a page of its own."""
    head = ["claim", "claimed", "mean", "95\\% CI", "$n$", "protocol of the runs", "CI status", "verdict"]
    rows = [
        [
            row["claim"],
            _num(row["claimed"]),
            _num(row["mean"]),
            _ci(row),
            row["n"],
            row["protocol"] or "-",
            row["ci_status"],
            _short_verdict(row["verdict"]),
        ]
        for _, row in frame.iterrows()
    ]
    return tex_grid(head, rows, "p{3.0cm}rrlrp{3.5cm}p{1.7cm}p{1.8cm}")


def _short_verdict(text: str) -> str:
    # The protocol column already names what differs; the narrow LaTeX column keeps only the verdict.
    return "not comparable (protocol)" if text.startswith("not comparable") else text
