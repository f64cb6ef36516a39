"""A run's figures against a baseline: the cookbook's numbers or another run.

Pure functions on plain data (``archive.run_results`` reads the files): a
baseline per host, then one ``Row`` per host x profile x metric with the value,
the baseline, the delta in percent and a verdict against ``catalog/tolerances.yml``:

- ``ok``: within the tolerance; ``better``: beyond it the good way;
- ``regression``: beyond it the bad way; ``missing``: no value or no baseline;
- ``skipped``: not compared for this profile (tolerances.yml ``profiles``).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal

import msgspec

from . import fleet, paths, schema, yamlsrc
from .archive import HostResults, host_meta, host_names
from .errors import InputError

PROFILE_ORDER = ("low", "medium", "high")
VERDICTS = ("ok", "better", "regression", "missing", "skipped")


# --- tolerances -----------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    metric: str
    direction: str  # "higher" | "lower" is better
    pct: float | None = None
    abs: float | None = None
    label: str = ""


@dataclass
class Tolerances:
    bench: dict[str, Tolerance] = field(default_factory=dict)
    gsm8k: dict[str, Tolerance] = field(default_factory=dict)
    skips: dict[str, dict[str, str]] = field(default_factory=dict)  # profile -> metric -> reason
    fleet: fleet.Rule = field(default_factory=fleet.Rule)  # the fleet view's outlier rule


_Margin = Annotated[float, msgspec.Meta(ge=0)]


class ToleranceSpec(schema.Struct, frozen=True, kw_only=True):
    """One metric's entry in tolerances.yml."""

    direction: Literal["higher", "lower"]
    tolerance_pct: _Margin | None = None
    tolerance_abs: _Margin | None = None
    label: str = ""


class ProfileSpec(schema.Struct, frozen=True, kw_only=True):
    """A profile's exceptions: metrics not compared (a list, or metric -> reason)."""

    skip: dict[str, str] | list[str] = {}


class FleetSpec(schema.Struct, frozen=True, kw_only=True):
    """The fleet view's outlier rule (llmfleet.fleet.Rule)."""

    mads: Annotated[float, msgspec.Meta(gt=0)] = 3.5
    min_delta_pct: _Margin = 10.0
    min_hosts: Annotated[int, msgspec.Meta(ge=2)] = 3
    metrics: dict[str, _Margin | None] = {}
    gsm8k_metrics: dict[str, _Margin | None] = {}
    tail_min_requests: Annotated[int, msgspec.Meta(ge=1)] = 100


class TolerancesFile(schema.Struct, frozen=True, kw_only=True):
    """catalog/tolerances.yml."""

    bench: dict[str, ToleranceSpec] = {}
    gsm8k: dict[str, ToleranceSpec] = {}
    profiles: dict[str, ProfileSpec | None] = {}
    fleet: FleetSpec | None = None


def _line_of(data: Any, *keys: str) -> int | None:
    """The line of the deepest of ``keys`` found in YAML data (for messages the schema cannot give)."""
    line = None
    for key in keys:
        if not isinstance(data, yamlsrc.LineDict) or key not in data:
            break
        line, data = data.line_of(key), data[key]
    return line


def parse_tolerances(data: Any, path: Path) -> Tolerances:
    """tolerances.yml, checked by its schema; one of tolerance_pct/tolerance_abs per metric."""
    spec = schema.convert(data, TolerancesFile, path=str(path), what="tolerances")
    tol = Tolerances()
    for section in ("bench", "gsm8k"):
        for metric, t in getattr(spec, section).items():
            if (t.tolerance_pct is None) == (t.tolerance_abs is None):
                raise InputError(f"tolerances {section}.{metric}: give exactly one of tolerance_pct, tolerance_abs",
                                 path, _line_of(data, section, metric))
            getattr(tol, section)[metric] = Tolerance(metric, t.direction, t.tolerance_pct, t.tolerance_abs,
                                                      t.label or metric)
    for profile, pspec in spec.profiles.items():
        skip = pspec.skip if pspec else {}
        if isinstance(skip, list):
            skip = {m: "not compared for this profile" for m in skip}
        tol.skips[profile] = dict(skip)
    if spec.fleet is not None:
        f = spec.fleet
        tol.fleet = fleet.Rule(f.mads, f.min_delta_pct, f.min_hosts, dict(f.metrics), dict(f.gsm8k_metrics),
                               f.tail_min_requests)
    return tol


def load_tolerances(path: Path | None = None) -> Tolerances:
    path = Path(path) if path else paths.catalog_dir() / "tolerances.yml"
    return parse_tolerances(yamlsrc.load(path), path)


# --- baselines --------------------------------------------------------------------


@dataclass
class HostBaseline:
    """What one host's figures are compared with."""

    label: str
    bench: dict[str, dict[str, Any]] = field(default_factory=dict)  # profile -> metrics
    gsm8k: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass
class Baseline:
    label: str
    hosts: dict[str, HostBaseline] = field(default_factory=dict)
    default: HostBaseline | None = None
    notes: list[str] = field(default_factory=list)

    def for_host(self, host: str) -> HostBaseline | None:
        return self.hosts.get(host, self.default)


MetricValue = str | int | float | None


class RefProfile(schema.Struct, frozen=True, kw_only=True):
    """One cookbook benchmark block: its workload and the figures printed."""

    num_prompts: int | None = None
    max_concurrency: int | None = None
    metrics: dict[str, MetricValue] = {}


class RefGsm8k(schema.Struct, frozen=True, kw_only=True):
    num_questions: int | None = None
    metrics: dict[str, MetricValue] = {}


class RefModel(schema.Struct, frozen=True, kw_only=True):
    bench: dict[str, RefProfile] = {}
    gsm8k: RefGsm8k | None = None


class RefEntry(schema.Struct, frozen=True, kw_only=True):
    """One published revision of the cookbook for one kind of hardware."""

    hardware: str
    tp: int | None = None
    sglang_version: str
    image: str | None = None
    source: str = ""
    models: dict[str, RefModel]


class ReferenceFile(schema.Struct, frozen=True, kw_only=True):
    """catalog/reference.yml."""

    entries: list[RefEntry]


def load_reference(path: Path | None = None) -> dict[str, Any]:
    """reference.yml as plain data, after its schema accepted it (``pick_entry`` reads it)."""
    path = Path(path) if path else paths.catalog_dir() / "reference.yml"
    data = yamlsrc.load(path)
    schema.convert(data, ReferenceFile, path=str(path), what="reference")
    return data


def version_tuple(version: Any) -> tuple[int, ...]:
    """"0.5.9" -> (0, 5, 9); "v0.5.10.post1" -> (0, 5, 10); junk -> ()."""
    m = re.search(r"(\d+(?:\.\d+)*)", str(version or ""))
    return tuple(int(x) for x in m.group(1).split(".")) if m else ()


def version_from_image(image: str | None) -> str | None:
    """The SGLang version in an image tag like lmsysorg/sglang:v0.5.9-rocm720-mi30x."""
    m = re.search(r":v(\d+\.\d+\.\d+(?:\.post\d+)?)", image or "")
    return m.group(1) if m else None


def _model_key(model: str, candidates: Iterable[str]) -> str | None:
    model = (model or "").lower()
    for key in candidates:
        if model == key.lower():
            return key
    for key in candidates:  # an HF id like meta-llama/Llama-4-Scout-17B-16E-Instruct
        if key.lower() in model:
            return key
    return None


def pick_entry(reference: dict[str, Any], model: str, hardware: str, version: str | None,
               need: str = "bench") -> tuple[dict[str, Any] | None, str | None]:
    """The reference entry for hardware+model closest to version that has ``need`` figures.

    Closest: the same version, else the newest older one, else the oldest newer one.
    Returns (entry's model data, entry's sglang_version).
    """
    want = version_tuple(version)
    found = []
    for entry in reference.get("entries", []):
        if str(entry.get("hardware", "")).lower() != (hardware or "").lower():
            continue
        models = entry.get("models") or {}
        key = _model_key(model, models)
        if key is None or not (models[key] or {}).get(need):
            continue
        found.append((version_tuple(entry.get("sglang_version")), entry, models[key]))
    if not found:
        return None, None

    def rank(item: tuple) -> tuple:
        v = item[0]
        if not want:
            return (0, tuple(-x for x in v))  # no version known: the newest
        if v == want:
            return (0, ())
        if v < want:
            return (1, tuple(-x for x in v))
        return (2, v)

    best = sorted(found, key=rank)[0]
    return best[2], str(best[1].get("sglang_version"))


def cookbook_host_baseline(reference: dict[str, Any], model: str, hardware: str,
                           version: str | None) -> HostBaseline:
    bench, bench_ver = pick_entry(reference, model, hardware, version, "bench")
    gsm, gsm_ver = pick_entry(reference, model, hardware, version, "gsm8k")
    label = f"cookbook {hardware or '?'} sglang {bench_ver or gsm_ver or '?'}"
    notes = []
    if bench is None and gsm is None:
        notes.append(f"no cookbook figures for {model or '?'} on {hardware or '?'}")
    if bench_ver and version and version_tuple(bench_ver) != version_tuple(version):
        notes.append(f"run is sglang {version}, closest cookbook figures are {bench_ver}")
    if gsm_ver and bench_ver and gsm_ver != bench_ver:
        notes.append(f"GSM8K figures from the sglang {gsm_ver} revision")
    return HostBaseline(
        label=label,
        bench={p: dict((spec or {}).get("metrics") or {}) for p, spec in ((bench or {}).get("bench") or {}).items()},
        gsm8k=dict(((gsm or {}).get("gsm8k") or {}).get("metrics") or {}),
        note="; ".join(notes),
    )


def run_facts(meta: dict[str, Any], host: str) -> tuple[str, str, str | None]:
    """(model, hardware, sglang version) of one host of a run, from its manifest."""
    hm = host_meta(meta, host)
    model = str(meta.get("model") or meta.get("hf_id") or "")
    hardware = str(hm.get("hardware") or "")
    version = hm.get("sglang_version") or version_from_image(hm.get("image"))
    return model, hardware, (str(version) if version else None)


def cookbook_baseline(reference: dict[str, Any], meta: dict[str, Any],
                      hosts: Iterable[str] | None = None) -> Baseline:
    """The cookbook's figures for each host, chosen by the run's model, hardware and version."""
    names = list(hosts) if hosts is not None else host_names(meta)
    base = Baseline(label="cookbook")
    for host in names:
        hb = cookbook_host_baseline(reference, *run_facts(meta, host))
        base.hosts[host] = hb
        if hb.note and hb.note not in base.notes:
            base.notes.append(hb.note)
    labels = sorted({hb.label for hb in base.hosts.values()})
    if len(labels) == 1:
        base.label = labels[0]
    return base


def run_baseline(results: dict[str, HostResults], label: str) -> Baseline:
    """Another run as the baseline: host by host, by name."""
    return Baseline(
        label=label,
        hosts={h: HostBaseline(label=label, bench=dict(r.bench), gsm8k=dict(r.gsm8k)) for h, r in results.items()},
    )


# --- judging ----------------------------------------------------------------------


@dataclass
class Row:
    host: str
    profile: str  # a bench profile, or "gsm8k"
    metric: str
    label: str
    value: float | None
    baseline: float | None
    delta_pct: float | None
    verdict: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def number(v: Any) -> float | None:
    """A figure that can be compared or drawn: a finite int or float; anything else is missing."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return v if math.isfinite(v) else None


def delta_pct(value: float, base: float) -> float | None:
    if base == 0:
        return 0.0 if value == 0 else None
    return (value - base) / abs(base) * 100.0


def judge(value: Any, base: Any, tol: Tolerance) -> tuple[float | None, str]:
    """(delta %, verdict) of one figure against its baseline."""
    v, b = number(value), number(base)
    if v is None or b is None:
        return None, "missing"
    d = delta_pct(v, b)
    sign = 1 if tol.direction == "higher" else -1
    if tol.abs is not None:
        worse_by = (b - v) * sign
        margin = tol.abs
    else:
        if d is None:  # baseline 0, value not
            return None, ("better" if (v - b) * sign > 0 else "regression")
        worse_by = -d * sign
        margin = tol.pct or 0.0
    eps = 1e-9
    if worse_by > margin + eps:
        return d, "regression"
    if -worse_by > margin + eps:
        return d, "better"
    return d, "ok"


def profile_key(profile: str) -> tuple[int, str]:
    return (PROFILE_ORDER.index(profile) if profile in PROFILE_ORDER else len(PROFILE_ORDER), profile)


def compare(results: dict[str, HostResults], baseline: Baseline, tolerances: Tolerances) -> list[Row]:
    """One row per host x profile x compared metric (and per host x GSM8K metric)."""
    rows: list[Row] = []
    for host in sorted(results):
        res = results[host]
        hb = baseline.for_host(host)
        for profile in sorted(res.bench, key=profile_key):
            got = res.bench[profile]
            base = (hb.bench.get(profile) if hb else None) or {}
            skips = tolerances.skips.get(profile, {})
            for metric, tol in tolerances.bench.items():
                if metric not in got and metric not in base:
                    continue
                value, ref = got.get(metric), base.get(metric)
                if metric in skips:
                    v, b = number(value), number(ref)
                    d = delta_pct(v, b) if v is not None and b is not None else None
                    rows.append(Row(host, profile, metric, tol.label, value, ref, d, "skipped", skips[metric]))
                    continue
                d, verdict = judge(value, ref, tol)
                note = "" if base else "no baseline for this profile"
                rows.append(Row(host, profile, metric, tol.label, value, ref, d, verdict, note))
        if res.gsm8k:
            base = (hb.gsm8k if hb else None) or {}
            for metric, tol in tolerances.gsm8k.items():
                if metric not in res.gsm8k and metric not in base:
                    continue
                d, verdict = judge(res.gsm8k.get(metric), base.get(metric), tol)
                rows.append(Row(host, "gsm8k", metric, tol.label, res.gsm8k.get(metric), base.get(metric), d, verdict,
                                "" if base else "no GSM8K baseline"))
    return rows


def summary(rows: Iterable[Row]) -> dict[str, int]:
    out = {v: 0 for v in VERDICTS}
    for r in rows:
        out[r.verdict] = out.get(r.verdict, 0) + 1
    return out


def regressions(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if r.verdict == "regression"]


PROFILE_FLAGS = ("num_prompts", "max_concurrency", "input_len", "output_len", "dataset")


def override_note(flags: dict[str, Any] | None) -> str | None:
    """A warning when a run changed the cookbook's workload: its figures are not the cookbook's."""
    changed = {k: v for k, v in (flags or {}).items() if k in PROFILE_FLAGS and v is not None and v != "random"}
    if not changed:
        return None
    shown = ", ".join(f"{k}={v}" for k, v in sorted(changed.items()))
    return f"this run changed the cookbook's workload ({shown}): compare with care"
