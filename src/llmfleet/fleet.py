"""The fleet view of a run: which host is off, by how much, and what its GPUs said.

Pure functions over a run's parsed results and telemetry summaries:

* per profile and metric, the fleet's median, min, max and spread over hosts;
* outlier hosts by a robust rule from catalog/tolerances.yml (``fleet:``): a value is an
  outlier when it is more than ``mads`` scaled MADs from the fleet median (the median
  absolute deviation of the *other* hosts x 1.4826, so that it estimates a standard
  deviation) AND at least ``min_delta_pct`` away from the median in percent. The first part keeps noise in a
  tight fleet quiet; the second keeps a fleet whose hosts agree to 0.1% from flagging a
  host 0.5% off. Worst first (largest relative difference);
* per outlier, the host's telemetry beside the fleet's (power, hotspot, throttling).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .telemetry import Energy

MAD_SCALE = 1.4826  # MAD x this estimates the standard deviation of normal data
ENERGY_METRICS = {"j_per_output_token": "J / output token", "avg_power_w": "GPU power (W)", "energy_j": "GPU energy (J)"}
EXPLAIN_FIELDS = ("avg_power_w", "peak_hotspot_c", "peak_mem_c", "throttled_pct", "avg_gfx_pct")


@dataclass(frozen=True)
class Rule:
    """The outlier rule (tolerances.yml ``fleet:``)."""

    mads: float = 3.5
    min_delta_pct: float = 10.0
    min_hosts: int = 3
    metrics: Mapping[str, float | None] = field(default_factory=dict)  # metric -> its own min_delta_pct (None: the rule's)
    gsm8k_metrics: Mapping[str, float | None] = field(default_factory=dict)  # the same for the GSM8K check
    tail_min_requests: int = 100  # a p99 over fewer requests is the slowest one or two: not compared

    def compares_tail(self, metric: str, completed: Any) -> bool:
        """Whether a host's value of this metric is compared: a tail (p99/p95) only over enough requests."""
        if not metric.startswith(("p99_", "p95_")):
            return True
        n = finite(completed)
        return n is not None and n >= self.tail_min_requests

    def compared(self, profile: str) -> Mapping[str, float | None]:
        """The metrics compared for a bench profile, or for "gsm8k"."""
        return self.gsm8k_metrics if profile == "gsm8k" else self.metrics

    def min_pct(self, metric: str, profile: str = "") -> float:
        own = self.compared(profile).get(metric)
        return self.min_delta_pct if own is None else own


@dataclass(frozen=True)
class Stat:
    """One metric of one profile over the fleet."""

    metric: str
    label: str
    values: dict[str, float]  # host -> value
    median: float
    min: float
    max: float
    mad: float
    spread_pct: float | None  # (max - min) / |median|

    @property
    def min_host(self) -> str:
        return min(self.values, key=lambda h: (self.values[h], h))

    @property
    def max_host(self) -> str:
        return max(self.values, key=lambda h: (self.values[h], h))

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "median": self.median, "min": self.min, "min_host": self.min_host,
                "max": self.max, "max_host": self.max_host, "mad": self.mad, "spread_pct": self.spread_pct,
                "hosts": len(self.values), "values": dict(sorted(self.values.items()))}  # fmt: skip


@dataclass(frozen=True)
class Outlier:
    host: str
    profile: str
    metric: str
    value: float
    fleet_median: float
    delta_pct: float
    robust_z: float | None  # None: the other hosts' MAD is 0
    label: str = ""
    telemetry: dict[str, Any] = field(default_factory=dict)  # the host's and the fleet's figures
    explain: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"host": self.host, "profile": self.profile, "metric": self.metric, "value": self.value,
                "fleet_median": self.fleet_median, "delta_pct": round(self.delta_pct, 2),
                "robust_z": None if self.robust_z is None else round(self.robust_z, 2), "label": self.label,
                "telemetry": self.telemetry, "explain": self.explain}  # fmt: skip


def finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def stat(metric: str, label: str, values: Mapping[str, Any]) -> Stat | None:
    """The fleet statistics of one metric (None without a finite value)."""
    vals = {h: f for h, v in values.items() if (f := finite(v)) is not None}
    if not vals:
        return None
    med = statistics.median(vals.values())
    mad = statistics.median(abs(v - med) for v in vals.values())
    lo, hi = min(vals.values()), max(vals.values())
    spread = (hi - lo) / abs(med) * 100 if med else None
    return Stat(metric, label, vals, med, lo, hi, mad, spread)


def others_scale(values: Mapping[str, float], host: str) -> float:
    """The robust standard deviation (scaled MAD) of every host but this one: a sick host never widens the
    yardstick it is measured with. On 3 hosts the fleet's MAD is the smaller of the two others' distances
    to the median, so two healthy hosts 4% apart hid a third 15% off (2.8 MADs); the other two's MAD does not."""
    others = [v for h, v in values.items() if h != host]
    med = statistics.median(others)
    return statistics.median(abs(v - med) for v in others) * MAD_SCALE


def outliers_of(s: Stat, profile: str, rule: Rule) -> list[Outlier]:
    """The hosts of one statistic that the rule flags."""
    if len(s.values) < rule.min_hosts or s.median == 0:
        return []
    out = []
    for host, v in s.values.items():
        dev = v - s.median
        delta = dev / abs(s.median) * 100
        scale = others_scale(s.values, host)
        z = dev / scale if scale else None
        far = abs(z) > rule.mads if z is not None else dev != 0
        if far and abs(delta) >= rule.min_pct(s.metric, profile):
            out.append(Outlier(host, profile, s.metric, v, s.median, delta, z, s.label))
    return out


def energy_values(energy: Mapping[str, Mapping[str, Energy]], profile: str, key: str) -> dict[str, Any]:
    """host -> one derived telemetry figure of a profile, only where the window is valid."""
    return {h: getattr(e[profile], key) for h, e in energy.items() if profile in e and e[profile].valid}


def explain(host: str, profile: str, energy: Mapping[str, Mapping[str, Energy]]) -> tuple[dict[str, Any], str]:
    """The host's telemetry beside the fleet median: what may explain an outlier."""
    mine = energy.get(host, {}).get(profile)
    if mine is None:
        return {}, "no telemetry for this host and profile"
    figures: dict[str, Any] = {"valid": mine.valid}
    words = []
    for key in EXPLAIN_FIELDS:
        v = getattr(mine, key)
        others = [f for e in energy.values() if profile in e and (f := finite(getattr(e[profile], key))) is not None]
        med = statistics.median(others) if others else None
        figures[key], figures[f"fleet_{key}"] = v, med
        if v is None or med is None:
            continue
        if key == "throttled_pct" and v > 0:
            words.append(f"throttled in {v:.0f}% of readings (fleet median {med:.0f}%)")
        elif key == "peak_hotspot_c" and v - med >= 5:
            words.append(f"hotspot up to {v:.0f} C (fleet median {med:.0f} C)")
        elif key == "avg_power_w" and med and abs(v - med) / med >= 0.05:
            words.append(f"GPU power {v:.0f} W (fleet median {med:.0f} W)")
    if not mine.valid:
        words.append(f"telemetry invalid: {mine.why_invalid}")
    return figures, "; ".join(words) or "telemetry looks like the fleet's"


@dataclass
class Fleet:
    rule: Rule
    stats: dict[str, dict[str, Stat]]  # profile -> metric -> stat
    outliers: list[Outlier]

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": {"mads": self.rule.mads, "min_delta_pct": self.rule.min_delta_pct, "min_hosts": self.rule.min_hosts,
                     "metrics": dict(self.rule.metrics), "gsm8k_metrics": dict(self.rule.gsm8k_metrics),
                     "tail_min_requests": self.rule.tail_min_requests},
            "profiles": {p: {m: s.as_json() for m, s in ms.items()} for p, ms in self.stats.items()},
            "outliers": [o.as_json() for o in self.outliers],
        }  # fmt: skip


def build(bench: Mapping[str, Mapping[str, Mapping[str, Any]]], gsm8k: Mapping[str, Mapping[str, Any]],
          energy: Mapping[str, Mapping[str, Energy]], labels: Mapping[str, str], rule: Rule,
          profiles: list[str]) -> Fleet:  # fmt: skip
    """The fleet view: ``bench`` host -> profile -> metrics, ``gsm8k`` host -> metrics, ``energy`` host -> name -> Energy."""
    stats: dict[str, dict[str, Stat]] = {}
    found: list[Outlier] = []
    names = [*profiles, "gsm8k"] if any(gsm8k.values()) else list(profiles)
    for profile in names:
        per: dict[str, Stat] = {}
        source = gsm8k if profile == "gsm8k" else {h: b.get(profile, {}) for h, b in bench.items()}
        for metric in rule.compared(profile):
            values = {h: m.get(metric) for h, m in source.items() if metric in m and rule.compares_tail(metric, m.get("completed"))}
            s = stat(metric, labels.get(metric, metric), values)
            if s is not None:
                per[metric] = s
                found.extend(outliers_of(s, profile, rule))
        for key, label in ENERGY_METRICS.items():
            s = stat(key, label, energy_values(energy, profile, key))
            if s is not None:
                per[key] = s
        if per:
            stats[profile] = per
    found.sort(key=lambda o: (-abs(o.delta_pct), o.host, o.profile, o.metric))
    explained = []
    for o in found:
        figures, why = explain(o.host, o.profile, energy)
        explained.append(Outlier(o.host, o.profile, o.metric, o.value, o.fleet_median, o.delta_pct, o.robust_z,
                                 o.label, figures, why))  # fmt: skip
    return Fleet(rule, stats, explained)
