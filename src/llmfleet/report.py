"""The report of one archived run: rich tables, JSON, and a self-contained HTML page.

``build_report`` does the I/O (load the run, its parsed results, the baseline,
the tolerances); everything else turns a ``Report`` into text. The HTML has no
external assets: its charts are inline SVG drawn here (``svg_bars``).
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Iterable

import jinja2
from markupsafe import Markup
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import __version__, archive, compare, metrics, paths
from .archive import HostResults, RunInfo
from .compare import Baseline, Row
from .errors import InputError

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
    """A figure as shown: "-" when absent, "invalid" when the log gave no finite number."""
    if v is None:
        return "-"
    if compare.number(v) is None:
        return "invalid"
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
    """The report as valid JSON (no NaN/Infinity: see metrics.json_safe)."""
    m = rep.run.manifest
    return metrics.json_safe({
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
    })


def render_console(rep: Report, console: Console) -> None:
    """One rich table per host: profile, metric, value, baseline, delta, verdict.

    Everything from the archive is printed as ``Text`` (``plain``): never markup, no raw control characters.
    """
    m = rep.run.manifest
    console.print(Text.assemble(
        ("run ", "bold"), (plain(rep.run.run_id), "bold"), f"  kind={plain(m.get('kind') or '-')}",
        f"  model={plain(m.get('model') or '-')}  sglang={plain(m.get('sglang_version') or '-')}  baseline=",
        (plain(rep.baseline.label), "bold"),
    ))
    if m.get("simulated"):
        console.print("[bold magenta]SIMULATED[/] lab run: GPUs and model are simulated; not a benchmark of hardware")
    for note in rep.baseline.notes:
        console.print(Text.assemble(("note:", "yellow"), " ", plain(note)))
    if rep.verified:
        console.print(Text.assemble(("archive check failed:", "bold red"), " ", plain("; ".join(rep.verified))))
    for host in rep.hosts:
        console.print(host_table(rep, host))
    console.print(Text(" ").join(
        Text(f"{k}={v}", style=VERDICT_STYLE[k]) for k, v in rep.summary.items() if v or k == "regression"
    ))


def host_table(rep: Report, host: str) -> Table:
    """One host's rows as a rich table (cells are Text, so no value is read as markup)."""
    table = Table(title=Text(plain(host)), title_justify="left", show_lines=False)
    for col, just in (("Profile", "left"), ("Metric", "left"), ("Value", "right"), ("Baseline", "right"),
                      ("Δ", "right"), ("Verdict", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    host_rows = [r for r in rep.rows if r.host == host]
    last = None
    for r in host_rows:
        if last is not None and r.profile != last:
            table.add_section()
        last = r.profile
        verdict = Text(r.verdict, style=VERDICT_STYLE.get(r.verdict, ""))
        if r.note:
            verdict.append(" " + plain(r.note), style="dim")
        table.add_row(*(Text(plain(c)) for c in (r.profile, r.label, fmt_value(r.value), fmt_value(r.baseline),
                                                  fmt_delta(r.delta_pct))), verdict)
    if not host_rows:
        table.add_row("-", "no results", "-", "-", "-", Text("missing", style="yellow"))
    return table


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _shown(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"


def plain(value: Any) -> str:
    r"""Text from a run for the terminal: control and bidi characters shown as ``\xNN``, never sent raw.

    A manifest or log can hold ``\x1b[...`` sequences that would rewrite the operator's screen.
    """
    return _UNPRINTABLE.sub(_shown, value if isinstance(value, str) else str(value))


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
        vals = [compare.number(s.values.get(key)) for s in series]
        vmax = max((v for v in vals if v is not None), default=0.0) or 1.0
        parts.append(f'<text x="{left - 8}" y="{y + group_h / 2 + 4:.1f}" font-size="12" text-anchor="end" '
                     f'fill="#1f2328">{escape(label)}</text>')
        for i, (s, v) in enumerate(zip(series, vals, strict=True)):
            by = y + i * (bar_h + gap)
            if v is None:
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
    """Write the HTML report; a folder or an unwritable path is an InputError (exit 2), not a traceback."""
    path = Path(path)
    if path.is_dir():
        raise InputError("--html names a folder; give a file name", path)
    html = render_html(rep)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the HTML report: {exc.strerror or exc}", path) from None
    return path


# --- runs listing -------------------------------------------------------------------


def runs_table(root: Path | None = None, verify: bool = True) -> list[dict[str, Any]]:
    """Every archived run as a row: id, kind, model, hosts, status, verified (and why not).

    A run whose manifest is unreadable or malformed is a row with ``verified: false``
    and its problems: it never stops the listing of the others.
    """
    out = []
    for r in archive.list_runs(root):
        problems = list(r.problems)
        if verify and not problems:
            try:
                problems = archive.verify_run(r.path)
            except OSError as exc:  # the run folder itself vanished or is unreadable
                problems = [f"cannot verify: {exc.strerror or exc}"]
        out.append({
            "run_id": r.run_id,
            "kind": r.kind,
            "model": r.model,
            "hosts": r.hosts,
            "status": r.status,
            "verified": (not problems) if verify or r.problems else None,
            "problems": problems,
            "started_at": r.manifest.get("started_at"),
            "path": str(r.path),
        })
    return out
