"""The bench action's telemetry orchestration on a scripted host (llmfleet.testing).

The sampler starts before the client and is stopped after it, past the client's end,
also when the client fails; its samples are archived as telemetry/<name>.jsonl with
the benchmark's window; the `always` collect step kills whatever sampler is left. The
lab tests are the end-to-end truth (real sshd, the lab's amd-smi).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from llmfleet import catalog, telemetry
from llmfleet.actions import bench as bench_action
from llmfleet.playbook import Playbook
from llmfleet.steps import Event, HostContext, RunContext, StepFailed
from llmfleet.testing import FakeHost, FakeNetwork, result
from llmfleet.transport import Endpoint

FIX = Path(__file__).parent.parent / "fixtures" / "telemetry"
ROOT = "/srv/llmfleet"
RAW = f"{ROOT}/work/telemetry/run-1/medium.raw"
METRIC = json.dumps(json.loads((FIX / "amd_smi_metric_gpu_data_mi300x.json").read_text()))


def host_with_sampler(net: FakeNetwork, clock: list[float]) -> FakeHost:
    host = net.host("h1")

    def stop(command: str) -> object:
        # what the real sampler would have written: a sample a second, past the client's end
        host.files[RAW] = "".join(f"{t} amd-smi {METRIC}\n" for t in range(99, 162)).encode()
        return result(command, stdout="stopped 0.42 1234.5\n")

    host.on(r"(?s)^sh -c .*sampler-start", "amd-smi 4242\n")
    host.on(r"^date ", lambda command: result(command, stdout=f"{clock.pop(0)}\n"))
    host.on(r"(?s)^sh -c .*sampler-stop ", stop)
    host.on(r"^rm -f ", 0)
    host.on(r"(?s)^sh -c .*sampler-stop-all", "1\n")
    return host


def context(net: FakeNetwork, telemetry_on: bool = True) -> tuple[HostContext, list[Event]]:
    events: list[Event] = []
    pb = Playbook(name="bench", path=Path("pb.yml"), roles=[], vars={}, lock=False)
    run = RunContext(playbook=pb, catalog=catalog.load(), mode="apply", run_id="run-1", emit=events.append)
    settings = SimpleNamespace(telemetry=telemetry_on, remote_root=ROOT, container_name="sglang")
    session = net.connect(Endpoint("h1", "198.51.100.1"))
    return HostContext(run, SimpleNamespace(name="h1"), settings, {}, session), events  # type: ignore[arg-type]


def test_sampler_brackets_the_client_and_its_samples_are_archived_with_the_window() -> None:
    net = FakeNetwork()
    host = host_with_sampler(net, clock=[100.25, 160.5])
    ctx, events = context(net)
    with bench_action.sampled(ctx, "medium", 600) as measured:
        host.commands.append("CLIENT")
        measured.duration_s, measured.output_tokens = 50.0, 10000
    assert host.commands.index("CLIENT") > 0
    assert "sampler-start" in host.commands[0] and host.commands[1].startswith("date")
    after = host.commands[host.commands.index("CLIENT") + 1 :]
    assert after[0].startswith("date") and "sampler-stop" in after[1] and after[1].endswith(" 160500")  # past the end (ms)
    assert after[2] == f"rm -f {RAW}" and net.unexpected == {}
    kept = ctx.run.host_files["h1"]["telemetry/medium.jsonl"].decode()
    window, samples = telemetry.loads(kept)
    assert window is not None
    assert (window["client_start"], window["client_end"]) == (100.25, 160.5)
    assert (window["start"], window["end"]) == (110.5, 160.5)  # the benchmark's own 50 s
    assert window["source"] == "amd-smi" and window["sampler_cpu_s"] == 0.42 and window["output_tokens"] == 10000
    assert len(samples) == 63 and samples[0]["gpus"][0]["power_w"] == 717.0
    e = telemetry.summarize(kept)
    assert e is not None and e.valid
    host_watts = 717 + 702 + 351 + 138
    assert e.avg_power_w == pytest.approx(host_watts)
    assert e.j_per_output_token == pytest.approx(host_watts * 50 / 10000)
    assert any("telemetry medium: 63 samples" in ev.text for ev in events)


def test_a_failing_client_still_stops_the_sampler_and_keeps_the_samples() -> None:
    net = FakeNetwork()
    host = host_with_sampler(net, clock=[100.0, 130.0])
    ctx, _ = context(net)
    with pytest.raises(StepFailed, match="bench_serving exited 1"), bench_action.sampled(ctx, "medium", 600):
        raise StepFailed("bench_serving exited 1")
    assert host.ran(r"sampler-stop ") and host.ran(r"^rm -f ")
    window, samples = telemetry.loads(ctx.run.host_files["h1"]["telemetry/medium.jsonl"].decode())
    assert window is not None and window["output_tokens"] is None and samples


def test_a_lost_host_while_stopping_does_not_hide_the_clients_result() -> None:
    net = FakeNetwork()
    host = net.host("h1")
    host.on(r"sampler-start", "amd-smi 1\n").on(r"^date ", "100.0\n", times=1).on(r"^date ", OSError("gone"))
    ctx, events = context(net)
    with bench_action.sampled(ctx, "low", 60) as measured:
        measured.duration_s = 5.0
    assert any("telemetry for low lost" in ev.text for ev in events)


def test_telemetry_off_runs_nothing_on_the_host() -> None:
    net = FakeNetwork()
    host = net.host("h1")
    ctx, _ = context(net, telemetry_on=False)
    with bench_action.sampled(ctx, "low", 60):
        pass
    assert host.commands == [] and "h1" not in ctx.run.host_files


def test_a_sampler_that_cannot_start_is_a_note_not_a_failure() -> None:
    net = FakeNetwork()
    host = net.host("h1").on(r"sampler-start", result("x", 127, stderr="sh: setsid: not found"))
    ctx, events = context(net)
    ran = []
    with bench_action.sampled(ctx, "low", 60):
        ran.append(True)
    assert ran and len(host.commands) == 1
    assert any("no sampler for low" in ev.text and "setsid" in ev.text for ev in events)


def test_collect_kills_every_sampler_of_the_run() -> None:
    net = FakeNetwork()
    host = host_with_sampler(net, clock=[])
    host.on(r"^docker ", result("docker", 1, stderr="no such container"))
    ctx, _ = context(net)
    bench_action.collect(ctx, {})
    (stop_all,) = host.ran(r"sampler-stop-all")
    assert stop_all.endswith(f"{ROOT}/work/telemetry/run-1")
