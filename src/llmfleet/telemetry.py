"""GPU telemetry sampled on a host while a benchmark or accuracy client runs.

Three parts, all small and most of them pure:

* the **sampler**: a POSIX shell loop started on the host (no Python needed there) that
  runs ``amd-smi metric --json`` (``rocm-smi --json`` where amd-smi is missing) once a
  second and appends one line per sample, ``<epoch> <tool> <the tool's JSON on one
  line>``, to a raw file. It can never outlive the run: it stops at its own deadline,
  when the run's SSH connection goes away (it watches the sshd process it was started
  from), when :func:`stop_argv` asks it to, and :func:`stop_all_argv` (the ``always``
  collect step) kills the process group of every sampler of the run.
* the **parsers**: both JSON shapes of ``amd-smi metric`` (a bare list, older releases;
  ``{"gpu_data": [...]}``, ROCm 7; also the watch-mode records with a ``timestamp``),
  and ``rocm-smi --json`` (``{"card0": {...}}``, values as strings); ``"N/A"`` anywhere;
  MI300-class GPUs have no edge temperature, so the hotspot (junction) one is read.
* the **derivation**: per profile window, average host power, energy, joules per output
  token and a validity flag (a sample gap over ``MAX_GAP_S`` or a window the samples do
  not cover makes it invalid, as MLPerf Power does with its analyzer's log).

Archive format (docs/archive-format.md): ``<host>/telemetry/<name>.jsonl``, a ``window``
record first, then one ``sample`` record per sample.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

MAX_GAP_S = 3.0  # a longer silence between samples makes the window's energy invalid
INTERVAL_S = 1.0

# --- the sampler on the host ----------------------------------------------------------

# $1 raw file, $2 pid file, $3 seconds until it stops by itself, $4 interval (s),
# $5 the stop file (holds epoch milliseconds: stop after the first sample at or past them).
# SIGUSR1 cuts its nap short (the stop sends it), so the last sample is taken at once.
_START = r"""
raw=$1 pidf=$2 left=$3 every=$4 stopf=$5
mkdir -p "$(dirname "$raw")" && rm -f "$stopf"
ssh=""; p=$PPID
while [ "${p:-0}" -gt 1 ]; do
  case "$(cat "/proc/$p/comm" 2>/dev/null)" in sshd*) ssh=$p; break ;; esac
  p=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$p/status" 2>/dev/null)
done
if command -v amd-smi >/dev/null 2>&1; then tool=amd-smi; else tool=rocm-smi; fi
end=$(( $(date +%s) + left ))
setsid sh -c '
raw=$1 every=$2 stopf=$3 end=$4 ssh=$5 tool=$6
nap=""; trap "[ -n \"\$nap\" ] && kill \$nap 2>/dev/null" USR1
while [ "$(date +%s)" -lt "$end" ]; do
  if [ -n "$ssh" ] && [ ! -d "/proc/$ssh" ]; then break; fi
  sleep "$every" & nap=$!
  t=$(date +%s.%N)
  if [ "$tool" = amd-smi ]; then
    out=$(amd-smi metric --usage --power --temperature --mem-usage --json 2>/dev/null)
  else
    out=$(rocm-smi --showpower --showuse --showmeminfo vram --showtemp --json 2>/dev/null)
  fi
  printf "%s %s %s\n" "$t" "$tool" "$(printf "%s" "$out" | tr -s " \n\t\r" "    ")" >> "$raw"
  ms="${t%%.*}$(printf %.3s "${t#*.}000")"
  if [ -f "$stopf" ] && [ "$ms" -ge "$(cat "$stopf" 2>/dev/null || echo 0)" ]; then break; fi
  wait "$nap"
done
' sampler "$raw" "$every" "$stopf" "$end" "$ssh" "$tool" </dev/null >/dev/null 2>&1 &
echo $! > "$pidf"
i=0  # return once the first sample is written: the client starts inside the sampled time
while [ ! -s "$raw" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
echo "$tool ${ssh:-no-sshd}"
"""

# $1 pid file, $2 stop file, $3 epoch milliseconds to sample past: the sampler, woken, takes its
# last sample after the client's end, then exits; after 10 s its process group is killed.
# Prints the sampler's CPU seconds (its own and its waited-for children's) and its age.
_STOP = r"""
pidf=$1 stopf=$2 past=$3
[ -f "$pidf" ] || { echo "no-sampler"; exit 0; }
pid=$(cat "$pidf"); hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
usage() { awk -v hz="$hz" '{sub(/^.*\) /, ""); print ($12+$13+$14+$15)/hz, $20/hz}' "/proc/$pid/stat" 2>/dev/null; }
cpu=$(usage)  # read before the wake-up too: a sampler past the end may exit before the loop looks
echo "$past" > "$stopf"; kill -USR1 "$pid" 2>/dev/null
i=0
while [ -d "/proc/$pid" ] && [ $i -lt 100 ]; do
  now=$(usage); [ -n "$now" ] && cpu=$now
  sleep 0.1; i=$((i+1))
done
kill -TERM -- "-$pid" 2>/dev/null; kill -TERM "$pid" 2>/dev/null
rm -f "$pidf" "$stopf"
echo "stopped ${cpu:-? ?}"
"""

# $1 the folder of the run's sampler files: kill every sampler still there and remove the
# folder (the `always` collect step).
_STOP_ALL = r"""
n=0
for f in "$1"/*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f"); kill -TERM -- "-$pid" 2>/dev/null; kill -TERM "$pid" 2>/dev/null
  rm -f "$f"; n=$((n+1))
done
rm -rf "$1"
echo "$n"
"""


@dataclass(frozen=True)
class SamplerPaths:
    """Where one sampler keeps its files on the host (outside the archived run folder)."""

    raw: str
    pid: str
    stop: str

    @classmethod
    def under(cls, folder: str, name: str) -> SamplerPaths:
        base = f"{folder.rstrip('/')}/{name}"
        return cls(f"{base}.raw", f"{base}.pid", f"{base}.stop")


def start_argv(p: SamplerPaths, lifetime_s: float, interval_s: float = INTERVAL_S) -> list[str]:
    """Start a sampler in the background; prints the tool it uses and the sshd it watches."""
    return ["sh", "-c", _START, "sampler-start", p.raw, p.pid, str(math.ceil(lifetime_s)), f"{interval_s:g}", p.stop]


def stop_argv(p: SamplerPaths, past_epoch: float) -> list[str]:
    """Stop a sampler after its first sample at or past ``past_epoch``; prints its CPU cost."""
    return ["sh", "-c", _STOP, "sampler-stop", p.pid, p.stop, str(math.ceil(past_epoch * 1000))]


def stop_all_argv(folder: str) -> list[str]:
    """Kill every sampler whose pid file is in ``folder``; prints how many."""
    return ["sh", "-c", _STOP_ALL, "sampler-stop-all", folder]


def parse_stop(stdout: str) -> tuple[float | None, float | None]:
    """(CPU seconds, seconds since boot at start) from :func:`stop_argv`'s output, when known."""
    parts = stdout.split()
    if len(parts) == 3 and parts[0] == "stopped":
        return number(parts[1]), number(parts[2])
    return None, None


# --- values ---------------------------------------------------------------------------

_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)")
_MB = {"B": 1 / 1048576, "KB": 1 / 1024, "KIB": 1 / 1024, "MB": 1.0, "MIB": 1.0, "GB": 1024.0, "GIB": 1024.0}


def number(value: Any) -> float | None:
    """A reading as a float: numbers, numeric strings ("41.0"), {"value", "unit"}; "N/A" -> None."""
    if isinstance(value, dict):
        return number(value.get("value"))
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    m = _NUMBER.match(str(value))
    return float(m.group(1)) if m else None


def megabytes(value: Any) -> float | None:
    """A memory reading in MB, whatever unit amd-smi gave it (MB by default)."""
    v = number(value)
    if v is None:
        return None
    unit = str(value.get("unit", "MB")).upper() if isinstance(value, dict) else "MB"
    return v * _MB.get(unit, 1.0)


def throttled(status: Any) -> bool | None:
    """amd-smi's throttle_status: "THROTTLED"/"UNTHROTTLED" (older: a bit mask, 0 = none)."""
    if isinstance(status, str):
        s = status.strip().upper()
        if s in ("THROTTLED", "UNTHROTTLED"):
            return s == "THROTTLED"
    v = number(status)
    return None if v is None else v != 0


def first(section: Any, *keys: str) -> Any:
    """The first key of ``keys`` present (and not "N/A") in a section."""
    if not isinstance(section, Mapping):
        return None
    for key in keys:
        if key in section and number(section[key]) is not None:
            return section[key]
    return None


# --- parsers (pure) ------------------------------------------------------------------


def gpu_reading(gpu: int, power: Any, gfx: Any, vram_mb: float | None, hotspot: Any, mem: Any,
                throttle: bool | None) -> dict[str, Any]:  # fmt: skip
    """One GPU of a sample, in llmfleet's own field names (docs/archive-format.md)."""
    return {"gpu": gpu, "power_w": number(power), "gfx_pct": number(gfx), "vram_used_mb": vram_mb,
            "hotspot_c": number(hotspot), "mem_c": number(mem), "throttled": throttle}  # fmt: skip


def parse_amd_smi_metric(data: Any) -> list[dict[str, Any]]:
    """``amd-smi metric --json``: a bare list or ``{"gpu_data": [...]}`` -> one reading per GPU."""
    records = data.get("gpu_data", []) if isinstance(data, dict) else data
    out = []
    for i, rec in enumerate(records if isinstance(records, list) else []):
        if not isinstance(rec, dict):
            continue
        power, usage = rec.get("power"), rec.get("usage")
        temp, mem = rec.get("temperature"), rec.get("mem_usage")
        gpu = rec.get("gpu")
        out.append(gpu_reading(
            gpu if isinstance(gpu, int) else i,
            first(power, "socket_power", "current_socket_power", "average_socket_power"),
            first(usage, "gfx_activity"),
            megabytes(first(mem, "used_vram")),
            first(temp, "hotspot", "junction", "edge"),
            first(temp, "mem", "memory"),
            throttled(power.get("throttle_status")) if isinstance(power, dict) else None,
        ))  # fmt: skip
    return out


_CARD = re.compile(r"^card(\d+)$")
ROCM_POWER_KEYS = ("Current Socket Graphics Package Power (W)", "Average Graphics Package Power (W)")


def parse_rocm_smi(data: Any) -> list[dict[str, Any]]:
    """``rocm-smi --showpower --showuse --showmeminfo vram --showtemp --json``: ``{"cardN": {...}}``."""
    out = []
    cards = data if isinstance(data, dict) else {}
    numbered = [(int(m.group(1)), card) for name, card in cards.items() if (m := _CARD.match(str(name)))]
    for index, card in sorted(numbered, key=lambda pair: pair[0]):
        if not isinstance(card, dict):
            continue
        used_b = number(card.get("VRAM Total Used Memory (B)"))
        out.append(gpu_reading(
            index,
            first(card, *ROCM_POWER_KEYS),
            card.get("GPU use (%)"),
            None if used_b is None else used_b / 1048576,
            first(card, "Temperature (Sensor junction) (C)", "Temperature (Sensor edge) (C)"),
            card.get("Temperature (Sensor memory) (C)"),
            None,
        ))  # fmt: skip
    return out


PARSERS = {"amd-smi": parse_amd_smi_metric, "rocm-smi": parse_rocm_smi}


def parse_raw(text: str) -> list[dict[str, Any]]:
    """The sampler's raw lines -> ``sample`` records (lines whose tool printed nothing usable are dropped)."""
    samples = []
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) < 3 or parts[1] not in PARSERS:
            continue
        t = number(parts[0])
        try:
            gpus = PARSERS[parts[1]](json.loads(parts[2]))
        except ValueError:
            continue
        if t is not None and gpus:
            samples.append({"kind": "sample", "t": round(t, 3), "source": parts[1], "gpus": gpus})
    return samples


# --- derivation (pure) ---------------------------------------------------------------


@dataclass(frozen=True)
class Energy:
    """One host's GPU energy over one profile's window."""

    samples: int
    avg_power_w: float | None  # all GPUs of the host together
    energy_j: float | None
    j_per_output_token: float | None
    max_gap_s: float | None
    valid: bool
    why_invalid: str
    peak_hotspot_c: float | None
    peak_mem_c: float | None
    avg_gfx_pct: float | None
    max_vram_used_mb: float | None
    throttled_pct: float | None  # share of GPU readings in the window that said THROTTLED

    def as_json(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def host_power(sample: Mapping[str, Any]) -> float | None:
    """The host's total GPU power in a sample (None when no GPU reported it)."""
    values = [g["power_w"] for g in sample.get("gpus", []) if g.get("power_w") is not None]
    return sum(values) if values else None


def _interp(t: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    if b[0] == a[0]:
        return a[1]
    return a[1] + (b[1] - a[1]) * (t - a[0]) / (b[0] - a[0])


def integrate(points: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Trapezoid integral of (t, watts) over [start, end], interpolated at the edges."""
    total = 0.0
    for a, b in itertools.pairwise(points):
        lo, hi = max(a[0], start), min(b[0], end)
        if hi > lo:
            total += (hi - lo) * (_interp(lo, a, b) + _interp(hi, a, b)) / 2
    return total


def coverage(times: Sequence[float], start: float, end: float, max_gap_s: float) -> tuple[float | None, str]:
    """(largest gap, why invalid or "") for sample times around [start, end]."""
    if end <= start:
        return None, "empty window"
    if not times:
        return None, "no samples"
    gaps = [b - a for a, b in itertools.pairwise(times) if b >= start and a <= end]
    largest = max(gaps) if gaps else None
    if times[0] > start:
        return largest, f"samples start {times[0] - start:.1f} s after the window"
    if times[-1] < end:
        return largest, f"samples end {end - times[-1]:.1f} s before the window"
    if largest is not None and largest > max_gap_s:
        return largest, f"a {largest:.1f} s gap between samples (more than {max_gap_s:g} s)"
    return largest, ""


def _mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return sum(vals) / len(vals) if vals else None


def _peak(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def derive(samples: Sequence[Mapping[str, Any]], start: float, end: float, output_tokens: float | None,
           max_gap_s: float = MAX_GAP_S) -> Energy:  # fmt: skip
    """Average power, energy and joules per output token of one window, and whether they hold."""
    powered = sorted((s["t"], p) for s in samples if (p := host_power(s)) is not None)
    gap, why = coverage([t for t, _ in powered], start, end, max_gap_s)
    inside = [s for s in samples if start <= s["t"] <= end]
    readings = [g for s in inside for g in s.get("gpus", [])]
    energy = integrate(powered, start, end) if not why else None
    avg = energy / (end - start) if energy is not None else None
    per_token = energy / output_tokens if energy is not None and output_tokens else None
    flags = [g["throttled"] for g in readings if g.get("throttled") is not None]
    return Energy(
        samples=len(inside),
        avg_power_w=avg,
        energy_j=energy,
        j_per_output_token=per_token,
        max_gap_s=gap,
        valid=not why,
        why_invalid=why,
        peak_hotspot_c=_peak(g.get("hotspot_c") for g in readings),
        peak_mem_c=_peak(g.get("mem_c") for g in readings),
        avg_gfx_pct=_mean(g["gfx_pct"] for g in readings if g.get("gfx_pct") is not None),
        max_vram_used_mb=_peak(sum(g.get("vram_used_mb") or 0 for g in s.get("gpus", [])) for s in inside) if inside else None,
        throttled_pct=100.0 * sum(flags) / len(flags) if flags else None,
    )


def bench_window(client_start: float, client_end: float, duration_s: float | None) -> tuple[float, float]:
    """The benchmark's own window: its reported duration, ending when the client ended.

    The client spends its first seconds loading the tokenizer and sampling prompts;
    those idle seconds are not the benchmark's energy.
    """
    if duration_s and duration_s > 0:
        return max(client_start, client_end - duration_s), client_end
    return client_start, client_end


# --- the archived file ---------------------------------------------------------------


def window_record(name: str, client: tuple[float, float], window: tuple[float, float], output_tokens: float | None,
                  source: str | None, sampler_cpu_s: float | None) -> dict[str, Any]:  # fmt: skip
    """The first record of a telemetry file: what the samples are for."""
    return {"kind": "window", "name": name, "client_start": round(client[0], 3), "client_end": round(client[1], 3),
            "start": round(window[0], 3), "end": round(window[1], 3), "output_tokens": output_tokens,
            "source": source, "interval_s": INTERVAL_S, "max_gap_s": MAX_GAP_S, "sampler_cpu_s": sampler_cpu_s}  # fmt: skip


def dumps(records: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)


def loads(text: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(window record or None, sample records) of an archived telemetry file; bad lines skipped."""
    window, samples = None, []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict):
            continue
        if rec.get("kind") == "window" and window is None:
            window = rec
        elif rec.get("kind") == "sample" and isinstance(number(rec.get("t")), float) and isinstance(rec.get("gpus"), list):
            samples.append(rec)
    return window, samples


def summarize(text: str) -> Energy | None:
    """The derived figures of an archived telemetry file (None without a window record)."""
    window, samples = loads(text)
    if window is None:
        return None
    start, end = number(window.get("start")), number(window.get("end"))
    if start is None or end is None:
        return None
    tokens = number(window.get("output_tokens"))
    return derive(samples, start, end, tokens, number(window.get("max_gap_s")) or MAX_GAP_S)
