"""The report of one archived run: rich tables, JSON, and a self-contained HTML page.

``build_report`` does the I/O (load the run, its parsed results, the baseline,
the tolerances); everything else turns a ``Report`` into text. The HTML has no
external assets: its charts are inline SVG drawn here (``svg_bars``).
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Iterable

import jinja2
from markupsafe import Markup
from rich.console import Console
from rich.table import Table

from . import __version__, archive, compare, paths
from .archive import HostResults, RunInfo
from .compare import Baseline, Row

VERDICT_STYLE = {"ok": "green", "better": "bold cyan", "regression": "bold red", "missing": "yellow", "skipped": "dim"}
VERDICT_COLOUR = {"ok": "#1a7f37", "better": "#0969da", "regression": "#cf222e", "missing": "#9a6700", "skipped": "#6e7781"}
RUN_COLOURS = ["#0969da", "#8250df", "#1a7f37", "#bf3989", "#953800", "#0a3069", "#6639ba", "#116329"]
BASELINE_COLOUR = "#8c959f"
THROUGHPUT_METRICS = ("output_throughput", "total_throughput")
LATENCY_METRICS = ("median_ttft_ms", "median_tpot_ms", "median_itl_ms", "p99_tpot_ms", "p99_itl_ms")


@dataclass
class Report:
    run: RunInfo
    results: dict[str, HostResults]
    baseline: Baseline
    rows: list[Row]
    verified: list[str] = field(default_factory=list)  # verify_run problems

    @property
    def hosts(self) -> list[str]:
        return sorted(self.results)

    @property
    def profiles(self) -> list[str]:
        names = {p for r in self.results.values() for p in r.bench}
        return sorted(names, key=compare.profile_key)

    @property
    def summary(self) -> dict[str, int]:
        return compare.summary(self.rows)

    @property
    def regressions(self) -> list[Row]:
        return compare.regressions(self.rows)


def build_report(run: str | Path | None = None, baseline: str = "cookbook", root: Path | None = None,
                 reference: Path | None = None, tolerances: Path | None = None) -> Report:
    """Load a run (default: the latest) and compare it with the cookbook or another run."""
    info = archive.load_run(run, root, kinds=archive.RESULT_KINDS)
    results = archive.run_results(info)
    tol = compare.load_tolerances(tolerances)
    if baseline in ("cookbook", "", None):
        base = compare.cookbook_baseline(compare.load_reference(reference), info.manifest, results.keys())
        note = compare.override_note(info.manifest.get("flags"))
        if note:
            base.notes.append(note)
    else:
        other = archive.load_run(baseline, root)
        base = compare.run_baseline(archive.run_results(other), f"run {other.run_id}")
    rows = compare.compare(results, base, tol)
    return Report(info, results, base, rows, archive.verify_run(info.path))


# --- formatting -------------------------------------------------------------------


def fmt_value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_delta(d: float | None) -> str:
    return "-" if d is None else f"{d:+.1f}%"


def report_json(rep: Report) -> dict[str, Any]:
    m = rep.run.manifest
    return {
        "run_id": rep.run.run_id,
        "path": str(rep.run.path),
        "kind": m.get("kind"),
        "model": m.get("model"),
        "sglang_version": m.get("sglang_version"),
        "simulated": bool(m.get("simulated")),
        "hosts": rep.hosts,
        "profiles": rep.profiles,
        "baseline": rep.baseline.label,
        "baseline_notes": rep.baseline.notes,
        "verified": not rep.verified,
        "verify_problems": rep.verified,
        "summary": rep.summary,
        "regressions": len(rep.regressions),
        "rows": [r.to_dict() for r in rep.rows],
        "results": {h: {"bench": r.bench, "gsm8k": r.gsm8k} for h, r in rep.results.items()},
    }


def render_console(rep: Report, console: Console) -> None:
    """One rich table per host: profile, metric, value, baseline, delta, verdict."""
    m = rep.run.manifest
    console.print(
        f"[bold]run {rep.run.run_id}[/]  kind={m.get('kind', '-')}  model={m.get('model', '-')}  "
        f"sglang={m.get('sglang_version', '-')}  baseline=[bold]{rep.baseline.label}[/]"
    )
    if m.get("simulated"):
        console.print("[bold magenta]SIMULATED[/] lab run: GPUs and model are simulated; not a benchmark of hardware")
    for note in rep.baseline.notes:
        console.print(f"[yellow]note:[/] {note}")
    if rep.verified:
        console.print(f"[bold red]archive check failed:[/] {'; '.join(rep.verified)}")
    for host in rep.hosts:
        table = Table(title=f"{host}", title_justify="left", show_lines=False)
        for col, just in (("Profile", "left"), ("Metric", "left"), ("Value", "right"), ("Baseline", "right"),
                          ("Δ", "right"), ("Verdict", "left")):
            table.add_column(col, justify=just)  # type: ignore[arg-type]
        host_rows = [r for r in rep.rows if r.host == host]
        last = None
        for r in host_rows:
            if last is not None and r.profile != last:
                table.add_section()
            last = r.profile
            style = VERDICT_STYLE.get(r.verdict, "")
            verdict = f"[{style}]{r.verdict}[/]" + (f" [dim]{escape_rich(r.note)}[/]" if r.note else "")
            table.add_row(r.profile, r.label, fmt_value(r.value), fmt_value(r.baseline), fmt_delta(r.delta_pct), verdict)
        if not host_rows:
            table.add_row("-", "no results", "-", "-", "-", "[yellow]missing[/]")
        console.print(table)
    s = rep.summary
    console.print(
        " ".join(f"[{VERDICT_STYLE[k]}]{k}[/]={v}" for k, v in s.items() if v or k == "regression")
    )


def escape_rich(text: str) -> str:
    return text.replace("[", r"\[")


# --- SVG charts --------------------------------------------------------------------


@dataclass
class Series:
    name: str
    colour: str
    values: dict[str, float | None]  # metric -> value


def svg_bars(title: str, metrics: list[tuple[str, str]], series: list[Series], width: int = 560) -> Markup:
    """Horizontal grouped bars, one group per metric, each group scaled to its own maximum.

    Metrics of different magnitudes (TTFT vs TPOT) stay readable side by side;
    every bar carries its value. Returns SVG markup with all text escaped.
    """
    bar_h, gap, group_gap, left, right, top = 14, 3, 14, 150, 90, 30
    groups = [(key, label) for key, label in metrics if any(s.values.get(key) is not None for s in series)]
    group_h = len(series) * (bar_h + gap) - gap
    height = top + max(1, len(groups)) * (group_h + group_gap) + 26
    plot_w = width - left - right
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="0" y="16" font-size="14" font-weight="600" fill="#1f2328">{escape(title)}</text>',
    ]
    y = top
    for key, label in groups:
        vals = [s.values.get(key) for s in series]
        vmax = max((v for v in vals if v is not None and math.isfinite(v)), default=0.0) or 1.0
        parts.append(f'<text x="{left - 8}" y="{y + group_h / 2 + 4:.1f}" font-size="12" text-anchor="end" '
                     f'fill="#1f2328">{escape(label)}</text>')
        for i, s in enumerate(series):
            v = s.values.get(key)
            by = y + i * (bar_h + gap)
            if v is None or not math.isfinite(v):
                parts.append(f'<text x="{left + 4}" y="{by + bar_h - 3}" font-size="11" fill="#6e7781">'
                             f'{escape(s.name)}: no value</text>')
                continue
            w = max(1.0, plot_w * max(v, 0.0) / vmax)
            parts.append(f'<rect x="{left}" y="{by}" width="{w:.1f}" height="{bar_h}" rx="2" fill="{s.colour}">'
                         f'<title>{escape(s.name)}: {escape(fmt_value(v))}</title></rect>')
            parts.append(f'<text x="{left + w + 4:.1f}" y="{by + bar_h - 3}" font-size="11" fill="#1f2328">'
                         f'{escape(fmt_value(v))}</text>')
        y += group_h + group_gap
    if not groups:
        parts.append(f'<text x="0" y="{top + 14}" font-size="12" fill="#6e7781">no data</text>')
    # legend
    lx = 0
    for s in series:
        parts.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{s.colour}"/>')
        parts.append(f'<text x="{lx + 14}" y="{height - 5}" font-size="11" fill="#1f2328">{escape(s.name)}</text>')
        lx += 24 + 7 * len(s.name)
    parts.append("</svg>")
    return Markup("".join(parts))


def _label_of(metric: str, rows: Iterable[Row]) -> str:
    for r in rows:
        if r.metric == metric:
            return r.label
    return metric


def profile_charts(rep: Report, profile: str) -> list[Markup]:
    """Throughput and latency of one profile: each host's run beside the baseline."""
    series = []
    for i, host in enumerate(rep.hosts):
        got = rep.results[host].bench.get(profile)
        if got:
            series.append(Series(host, RUN_COLOURS[i % len(RUN_COLOURS)], dict(got)))
    base_vals: dict[str, Any] = {}
    for host in rep.hosts:
        hb = rep.baseline.for_host(host)
        if hb and hb.bench.get(profile):
            base_vals = dict(hb.bench[profile])
            break
    if base_vals:
        series.append(Series(f"baseline ({rep.baseline.label})", BASELINE_COLOUR, base_vals))
    tp = [(m, _label_of(m, rep.rows)) for m in THROUGHPUT_METRICS]
    lat = [(m, _label_of(m, rep.rows)) for m in LATENCY_METRICS]
    return [svg_bars(f"{profile}: throughput", tp, series), svg_bars(f"{profile}: latency", lat, series)]


# --- HTML ---------------------------------------------------------------------------


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.templates_dir())),
        autoescape=jinja2.select_autoescape(["html", "j2", "html.j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_value
    env.filters["delta"] = fmt_delta
    return env


def render_html(rep: Report, template: str = "report.html.j2") -> str:
    """The self-contained HTML report (templates/report.html.j2, autoescaped)."""
    m = rep.run.manifest
    charts = {p: profile_charts(rep, p) for p in rep.profiles}
    gsm_rows = [r for r in rep.rows if r.profile == "gsm8k"]
    return _env().get_template(template).render(
        run=rep.run,
        meta=m,
        hosts=rep.hosts,
        host_meta={h: archive.host_meta(m, h) for h in rep.hosts},
        profiles=rep.profiles,
        rows=rep.rows,
        gsm_rows=gsm_rows,
        charts=charts,
        baseline=rep.baseline,
        summary=rep.summary,
        regressions=rep.regressions,
        verify_problems=rep.verified,
        colours=VERDICT_COLOUR,
        toolkit_version=__version__,
        generated_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
    )


def write_html(rep: Report, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(rep), encoding="utf-8")
    return path


# --- runs listing -------------------------------------------------------------------


def runs_table(root: Path | None = None, verify: bool = True) -> list[dict[str, Any]]:
    """Every archived run as a row: id, kind, model, hosts, status, verified."""
    out = []
    for r in archive.list_runs(root):
        problems = archive.verify_run(r.path) if verify else []
        out.append({
            "run_id": r.run_id,
            "kind": r.kind,
            "model": r.model,
            "hosts": r.hosts,
            "status": r.status,
            "verified": (not problems) if verify else None,
            "problems": problems,
            "started_at": r.manifest.get("started_at"),
            "path": str(r.path),
        })
    return out
