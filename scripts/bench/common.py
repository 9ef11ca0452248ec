"""Shared benchmark helpers: warm-up + repeated timing, machine info, tables, JSON results.

Every benchmark reports ratios against a baseline measured in the same run; absolute times are context.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Timing:
    """Seconds per call: median and interquartile spread over ``repeat`` measurements."""

    median: float
    q25: float
    q75: float
    repeat: int

    @property
    def spread(self) -> float:
        return self.q75 - self.q25


def timeit(fn: Callable[[], Any], warmup: int = 2, repeat: int = 5, number: int = 1) -> Timing:
    """Times ``fn`` after ``warmup`` calls; each of ``repeat`` samples averages ``number`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    samples.sort()
    if len(samples) >= 4:
        q = statistics.quantiles(samples, n=4)
        q25, q75 = q[0], q[2]
    else:
        q25, q75 = samples[0], samples[-1]
    return Timing(statistics.median(samples), q25, q75, repeat)


def machine_info() -> dict[str, Any]:
    """CPU model, cores, torch threads and device: printed with every table."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Prints a table with rich and returns it as Markdown."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(str(c))
    for r in rows:
        table.add_row(*[_fmt(v) for v in r])
    console = Console()
    if not console.is_terminal:  # piped / redirected: the table's full width (rich would cut it to 80 columns)
        natural = console.measure(table, options=console.options.update_width(10**6)).maximum
        console = Console(width=max(console.width, natural))
    console.print(table)
    md = [f"### {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(md) + "\n"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v == 0 or 1e-3 <= abs(v) < 1e6:
            return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"
        return f"{v:.3e}"
    return str(v)


def lead(ours: float, theirs: float, who: str) -> str:
    """'we lead GL by 2.3x' / 'we trail GL (0.40x its rate)': the wording of a throughput ratio in a reading."""
    r = ours / theirs
    return f"we lead {who} by {r:.1f}x" if r >= 1 else f"we trail {who} ({r:.2f}x its rate)"


def write_results(name: str, results: dict[str, Any], markdown: str = "", out_dir: str | Path = "runs/bench") -> Path:
    """Writes ``<out_dir>/<name>.json`` (and ``.md``) atomically, with machine info attached."""
    # Imported here: the peer workers load this module by path in venvs without Chronotope (peers._load_common).
    from chronotope.agents.runs import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"name": name, "machine": machine_info(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **results}
    path = out / f"{name}.json"
    atomic_write_text(path, json.dumps(payload, indent=2, default=_default))
    if markdown:
        atomic_write_text(out / f"{name}.md", markdown)
    return path


def _default(o: Any) -> Any:
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def quick_settings(cfg, quick: dict):
    """``cfg`` (a benchmark's dataclass Config) with each field named in ``quick`` set to its quick value where
    ``cfg`` still holds the class default; values given explicitly stay."""
    from dataclasses import replace

    default = type(cfg)()
    return replace(
        cfg, **{k: v if getattr(cfg, k) == getattr(default, k) else getattr(cfg, k) for k, v in quick.items()}
    )
