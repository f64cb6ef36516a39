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

from . import __version__, archive, compare, fleet, metrics, paths, telemetry
from .archive import HostResults, RunInfo
from .compare import Baseline, Row
from .errors import InputError
from .fleet import Fleet
from .telemetry import Energy

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
    verify_problems: list[str] = field(default_factory=list)  # what verify_run found wrong (empty: verified)
    energy: dict[str, dict[str, Energy]] = field(default_factory=dict)  # host -> profile or "gsm8k" -> telemetry
    fleet: Fleet | None = None
    baseline_fleet: Fleet | None = None  # the baseline run's fleet view (--baseline RUN)

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
    energy = run_energy(info)
    rep = Report(info, results, base, rows, archive.verify_run(info.path), energy)
    rep.fleet = fleet_view(results, energy, tol, rep.profiles)
    if baseline not in ("cookbook", "", None):
        other_results = archive.run_results(other)
        other_profiles = sorted({p for r in other_results.values() for p in r.bench}, key=compare.profile_key)
        rep.baseline_fleet = fleet_view(other_results, run_energy(other), tol, other_profiles)
    return rep


TELEMETRY_FILE = re.compile(r"\A(?P<host>[^/]+)/telemetry/(?P<name>[^/]+)\.jsonl\Z")


def run_energy(run: RunInfo) -> dict[str, dict[str, Energy]]:
    """host -> profile (or "gsm8k") -> derived telemetry, from files the manifest lists and that verify."""
    out: dict[str, dict[str, Energy]] = {}
    for entry in run.typed.files if run.typed else []:
        m = TELEMETRY_FILE.match(entry.path)
        if not m or not archive.safe_name(m.group("host")) or archive.relpath_problem(entry.path):
            continue
        data = archive.read_verified(run, entry.path)
        summary = telemetry.summarize(data.decode("utf-8", errors="replace")) if data is not None else None
        if summary is not None:
            out.setdefault(m.group("host"), {})[m.group("name")] = summary
    return out


def fleet_view(results: dict[str, HostResults], energy: dict[str, dict[str, Energy]], tol: compare.Tolerances,
               profiles: list[str]) -> Fleet:  # fmt: skip
    """The fleet statistics and outliers of one run's results."""
    labels = {**{m: t.label for m, t in tol.gsm8k.items()}, **{m: t.label for m, t in tol.bench.items()}}
    bench = {h: r.bench for h, r in results.items()}
    gsm8k = {h: r.gsm8k for h, r in results.items()}
    return fleet.build(bench, gsm8k, energy, labels, tol.fleet, profiles)


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
        "verified": not rep.verify_problems,
        "verify_problems": rep.verify_problems,
        "summary": rep.summary,
        "regressions": len(rep.regressions),
        "rows": [r.to_dict() for r in rep.rows],
        "results": {h: {"bench": r.bench, "gsm8k": r.gsm8k} for h, r in rep.results.items()},
        "energy": {h: {p: e.as_json() for p, e in sorted(ps.items())} for h, ps in sorted(rep.energy.items())},
        "fleet": fleet_json(rep),
    })


def fleet_json(rep: Report) -> dict[str, Any]:
    """``fleet``: rule, per-profile statistics, outliers worst first, and the baseline run's medians."""
    out = rep.fleet.as_json() if rep.fleet else {"profiles": {}, "outliers": []}
    if rep.baseline_fleet is not None:
        out["baseline"] = {"label": rep.baseline.label, "medians": fleet_deltas(rep.fleet, rep.baseline_fleet)}
    return out


def fleet_deltas(now: Fleet | None, then: Fleet) -> dict[str, dict[str, dict[str, float | None]]]:
    """profile -> metric -> this run's fleet median, the baseline's, and the change in percent."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for profile, stats in (now.stats if now else {}).items():
        for metric, st in stats.items():
            old = then.stats.get(profile, {}).get(metric)
            if old is None:
                continue
            d = compare.delta_pct(st.median, old.median)
            out.setdefault(profile, {})[metric] = {"median": st.median, "baseline_median": old.median, "delta_pct": d}
    return out


def render_console(rep: Report, console: Console, per_host: bool = False) -> None:
    """The fleet table and its outliers; with ``per_host``, one table per host (value, baseline, delta, verdict).

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
    if rep.verify_problems:
        console.print(Text.assemble(("archive check failed:", "bold red"), " ", plain("; ".join(rep.verify_problems))))
    if rep.fleet is not None and rep.fleet.stats and len(rep.hosts) > 1:
        console.print(fleet_table(rep))
        console.print(outliers_table(rep.fleet))
    small = rep.fleet is None or not rep.fleet.stats or len(rep.hosts) < rep.fleet.rule.min_hosts
    if per_host or small:  # a fleet too small to compare: each host's own table
        for host in rep.hosts:
            console.print(host_table(rep, host))
    elif rep.regressions:
        console.print(regressions_table(rep.regressions))
    console.print(Text(" ").join(
        Text(f"{k}={v}", style=VERDICT_STYLE[k]) for k, v in rep.summary.items() if v or k == "regression"
    ))


def fleet_table(rep: Report) -> Table:
    """Per profile and metric: the fleet's median, min and max (with their hosts), spread, outlier hosts."""
    assert rep.fleet is not None
    deltas = fleet_deltas(rep.fleet, rep.baseline_fleet) if rep.baseline_fleet else {}
    table = Table(title=Text(f"fleet: {len(rep.hosts)} host(s)"), title_justify="left")
    cols = ["Profile", "Metric", "Median", "Min", "Max", "Spread"] + (["Baseline", "Δ"] if deltas else []) + ["Outliers"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("Profile", "Metric", "Outliers", "Min", "Max") else "right")
    flagged: dict[tuple[str, str], list[str]] = {}
    for o in rep.fleet.outliers:
        flagged.setdefault((o.profile, o.metric), []).append(f"{o.host} {fmt_delta(o.delta_pct)}")
    for profile, stats in rep.fleet.stats.items():
        table.add_section()
        for metric, st in stats.items():
            cells = [profile, st.label, fmt_value(st.median), f"{fmt_value(st.min)} {st.min_host}",
                     f"{fmt_value(st.max)} {st.max_host}", "-" if st.spread_pct is None else f"{st.spread_pct:.1f}%"]
            if deltas:
                d = deltas.get(profile, {}).get(metric, {})
                cells += [fmt_value(d.get("baseline_median")), fmt_delta(d.get("delta_pct"))]
            out = ", ".join(flagged.get((profile, metric), []))
            table.add_row(*(Text(plain(c)) for c in cells), Text(plain(out) or "-", style="bold red" if out else "dim"))
    return table


def outliers_table(f: Fleet) -> Table | Text:
    """The outlier hosts, worst first, with the telemetry that may explain them."""
    if not f.outliers:
        return Text(f"no outlier hosts (rule: > {f.rule.mads:g} MADs of the other hosts and >= {f.rule.min_delta_pct:g}% from the "
                    f"fleet median; tails over >= {f.rule.tail_min_requests} requests)",
                    style="green")
    table = Table(title=Text("outlier hosts, worst first"), title_justify="left")
    for col in ("Host", "Profile", "Metric", "Value", "Fleet median", "Δ", "Telemetry"):
        table.add_column(col, justify="right" if col in ("Value", "Fleet median", "Δ") else "left")
    for o in f.outliers:
        table.add_row(*(Text(plain(c)) for c in (o.host, o.profile, o.label, fmt_value(o.value), fmt_value(o.fleet_median),
                                                 fmt_delta(o.delta_pct), o.explain)))  # fmt: skip
    return table


def regressions_table(rows: list[Row]) -> Table:
    """Figures worse than the baseline beyond their tolerance (every host's: `--per-host` for all rows)."""
    table = Table(title=Text(f"{len(rows)} regression(s) against the baseline"), title_justify="left")
    for col in ("Host", "Profile", "Metric", "Value", "Baseline", "Δ"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(Text(plain(c)) for c in (r.host, r.profile, r.label, fmt_value(r.value), fmt_value(r.baseline),
                                                 fmt_delta(r.delta_pct))))  # fmt: skip
    return table


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


OUTLIER_COLOUR, HOST_COLOUR, BAND_COLOUR = "#cf222e", "#0969da", "#ddf4ff"


def svg_fleet(title: str, st: fleet.Stat, flagged: set[str], band_pct: float, baseline: float | None = None,
              width: int = 420) -> Markup:  # fmt: skip
    """One metric over the fleet: a bar per host, sorted by value, outliers red.

    The dashed line is the fleet median, the shaded band the rule's minimum relative
    difference around it (a host outside the band AND far in MADs is an outlier), the
    grey line the baseline's figure. Scales to 64 hosts: rows shrink, labels stay.
    """
    hosts = sorted(st.values, key=lambda h: (-st.values[h], h))
    row = max(6.0, min(16.0, 320.0 / max(1, len(hosts))))
    font = max(6.0, min(11.0, row - 1))
    left, right, top = 96, 70, 26
    height = int(top + row * len(hosts) + 22)
    plot_w = width - left - right
    vmax = max([*st.values.values(), st.median * (1 + band_pct / 100), baseline or 0.0]) or 1.0

    def x(v: float) -> float:
        return left + plot_w * max(v, 0.0) / vmax

    parts = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
         f'role="img" aria-label="{escape(title)}">'),
        f'<text x="0" y="15" font-size="13" font-weight="600" fill="#1f2328">{escape(title)}</text>',
    ]
    lo, hi = x(st.median * (1 - band_pct / 100)), x(st.median * (1 + band_pct / 100))
    parts.append(f'<rect x="{lo:.1f}" y="{top - 4}" width="{hi - lo:.1f}" height="{row * len(hosts) + 8:.1f}" '
                 f'fill="{BAND_COLOUR}"><title>within {band_pct:g}% of the fleet median</title></rect>')
    for i, host in enumerate(hosts):
        v, y = st.values[host], top + i * row
        colour = OUTLIER_COLOUR if host in flagged else HOST_COLOUR
        weight = ' font-weight="700"' if host in flagged else ""
        parts.append(f'<text x="{left - 6}" y="{y + row - 2:.1f}" font-size="{font:.0f}" text-anchor="end" '
                     f'fill="{colour if host in flagged else "#1f2328"}"{weight}>{escape(host)}</text>')
        parts.append(f'<rect x="{left}" y="{y + 1:.1f}" width="{max(1.0, x(v) - left):.1f}" height="{row - 2:.1f}" '
                     f'fill="{colour}"><title>{escape(host)}: {escape(fmt_value(v))}</title></rect>')
        if row >= 10 or host in flagged:
            parts.append(f'<text x="{x(v) + 3:.1f}" y="{y + row - 2:.1f}" font-size="{font:.0f}" fill="#1f2328"{weight}>'
                         f'{escape(fmt_value(v))}</text>')
    bottom = top + row * len(hosts) + 4
    xm = x(st.median)
    parts.append(f'<line x1="{xm:.1f}" y1="{top - 4}" x2="{xm:.1f}" y2="{bottom:.1f}" stroke="#1f2328" '
                 f'stroke-dasharray="4 3"/>')
    legend = f"median {fmt_value(st.median)}, spread {st.spread_pct:.1f}%" if st.spread_pct is not None else ""
    if baseline is not None:
        xb = x(baseline)
        parts.append(f'<line x1="{xb:.1f}" y1="{top - 4}" x2="{xb:.1f}" y2="{bottom:.1f}" stroke="{BASELINE_COLOUR}" '
                     f'stroke-width="2"/>')
        legend += f"; baseline {fmt_value(baseline)} (grey)"
    parts.append(f'<text x="0" y="{height - 4}" font-size="11" fill="#57606a">{escape(legend)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def fleet_charts(rep: Report) -> dict[str, list[Markup]]:
    """profile -> one chart per metric of the fleet view."""
    if rep.fleet is None:
        return {}
    out: dict[str, list[Markup]] = {}
    for profile, stats in rep.fleet.stats.items():
        charts = []
        for metric, st in stats.items():
            flagged = {o.host for o in rep.fleet.outliers if o.profile == profile and o.metric == metric}
            band = rep.fleet.rule.min_pct(metric, profile) if metric in rep.fleet.rule.compared(profile) else 0.0
            charts.append(svg_fleet(f"{profile}: {st.label}", st, flagged, band, baseline_value(rep, profile, metric)))
        out[profile] = charts
    return out


def baseline_value(rep: Report, profile: str, metric: str) -> float | None:
    """The baseline's figure for a fleet chart: the cookbook's, or the baseline run's fleet median."""
    if rep.baseline_fleet is not None:
        st = rep.baseline_fleet.stats.get(profile, {}).get(metric)
        return st.median if st else None
    for host in rep.hosts:
        hb = rep.baseline.for_host(host)
        got = (hb.gsm8k if profile == "gsm8k" else hb.bench.get(profile, {})) if hb else {}
        if got and compare.number(got.get(metric)) is not None:
            return float(got[metric])
    return None


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
        fleet=rep.fleet,
        fleet_charts=fleet_charts(rep),
        energy=rep.energy,
        baseline=rep.baseline,
        summary=rep.summary,
        regressions=rep.regressions,
        verify_problems=rep.verify_problems,
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
