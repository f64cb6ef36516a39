"""The HTML report in a real headless browser: render, screenshot, look."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from llmfleet import report

from .fleet_runs import make_run

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "tests" / "fixtures" / "runs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows) of an 8-bit RGB/RGBA PNG (what Chromium writes), filters undone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i:i + 3]) for r in rows[::8] for i in range(0, len(r), bpp * 8)]


def screenshot(html: Path, tmp_path: Path) -> bytes:
    """A 1400x2000 PNG of the page from headless Chromium (kept beside the page for a look)."""
    assert CHROMIUM is not None
    shot = html.with_suffix(".png")
    profile_dir = tmp_path / "chromium-profile"
    profile_dir.mkdir(exist_ok=True)
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile_dir}", f"--screenshot={shot}", "--window-size=1400,2000", html.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return shot.read_bytes()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package `chromium`)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    rep = report.build_report(None, root=RUNS)
    html = report.write_html(rep, tmp_path / "report.html")
    text = html.read_text()
    for host in rep.hosts:
        for profile in rep.profiles:
            assert f"{host} / {profile}" in text
    data = screenshot(html, tmp_path)
    assert len(data) > 50_000  # a blank 1400x2000 page compresses to a few KB
    width, height, pixels = png_pixels(data)
    assert (width, height) == (1400, 2000)
    colours = set(pixels)
    assert len(colours) > 50
    # the chart bars are drawn: the run's first host colour and the baseline grey are on screen
    assert bytes.fromhex(report.RUN_COLOURS[0][1:]) in colours
    assert bytes.fromhex(report.BASELINE_COLOUR[1:]) in colours
    # and a verdict badge (the green "ok" pill)
    assert bytes.fromhex(report.VERDICT_COLOUR["ok"][1:]) in colours


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package `chromium`)")
@pytest.mark.parametrize("n_hosts", [8, 64])
def test_fleet_report_of_many_hosts_shows_the_sick_host_at_a_glance(tmp_path: Path, n_hosts: int) -> None:
    make_run(tmp_path, n_hosts, sick="gpu03")
    rep = report.build_report(None, root=tmp_path)
    html = report.write_html(rep, tmp_path / f"fleet-{n_hosts}.html")
    text = html.read_text()
    assert text.count('<tr class="outlier">') == len(rep.fleet.outliers) > 0
    assert "<details>" in text and "Per-host detail" in text  # the host tables are folded away
    width, height, pixels = png_pixels(screenshot(html, tmp_path))
    colours = set(pixels)
    # above the fold: the fleet charts with the sick host's red bars, the others blue, the median band
    for colour in (report.OUTLIER_COLOUR, report.HOST_COLOUR, report.BAND_COLOUR):
        assert bytes.fromhex(colour[1:]) in colours, colour
    red = sum(1 for p in pixels if p == bytes.fromhex(report.OUTLIER_COLOUR[1:]))
    blue = sum(1 for p in pixels if p == bytes.fromhex(report.HOST_COLOUR[1:]))
    assert blue > red > 0  # one host of many is red
