"""What every benchmark prints and saves: the machine header line and the final table (markdown on
stdout, CSV and JSON under --out). Timings mean nothing without the machine that produced them."""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
from pathlib import Path

import torch

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def parser(doc: str, out_name: str) -> argparse.ArgumentParser:
    """A benchmark's parser (description: the first paragraph of ``doc``) with --device, --threads and
    --out, which mean the same in every benchmark."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help=f"torch threads (default {torch.get_num_threads()})",
    )
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"folder for {out_name}.csv/.json (default {DEFAULT_OUT})"
    )
    return p


def machine(device: torch.device | str = "cpu") -> dict:
    device = torch.device(device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "device": device.type,
        "gpu": gpu,
        "load_average": load_average(),
    }


def header(title: str, device: torch.device | str = "cpu") -> dict:
    """Print the one header line, and return it as a dict for the saved results."""
    info = machine(device)
    print(
        f"{title} | cpu: {info['cpu']} ({info['cpus']} cpus) | torch {info['torch']} | threads {info['threads']} | "
        f"device {info['device']}{': ' + info['gpu'] if info['gpu'] else ''} | load average {info['load_average']}"
    )
    return info


def markdown(rows: list[dict]) -> str:
    columns = list(rows[0])

    def cell(v) -> str:
        return (
            f"{v:,.3g}" if isinstance(v, float) and abs(v) < 100 else (f"{v:,.0f}" if isinstance(v, float) else str(v))
        )

    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def save(rows: list[dict], out: Path, name: str, info: dict, settings: dict) -> None:
    """``<out>/<name>.csv`` (the table) and ``<out>/<name>.json`` (the table, the machine, the settings)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{name}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / f"{name}.json").write_text(
        json.dumps({"machine": info, "settings": settings, "rows": rows}, indent=2) + "\n"
    )
    print(f"wrote {out / name}.csv and .json")
