"""``jsproj dashboard`` against a real store: its JSON, its guards, the CLI, and the page in a real Chromium."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import zlib
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from clihelp import JSPROJ, ROOT
from jsproj.errors import InputError
from jsproj.follow.daemon import Daemon
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore
from jsproj.tools import dashboard
from jsproj.tools.cli import dashboard as cli
from jsproj.tools.dashboard import Dashboard, read_only
from test_docs import blocks

from waiting import daemon_thread, wait_until

FILES = [
    {
        "file": "Counters.js",
        "source": """
projections.aggregate('Totals').by({ $any: function (s, e) { s.events = (s.events || 0) + 1; } });
projections.projectStream('Account').named('Balance').by({
  Deposited: function (s, e) { s.balance = (s.balance || 0) + e.amount; }
});""",
    },
    {
        "file": "Tickets.js",
        "source": """
projections.projectStream('Ticket').named('Tickets').by({
  Noted: function (s, e) { if (e.bad) throw new Error(e.text); s.notes = (s.notes || 0) + 1; }
});""",
    },
]
XSS = "<img src=x onerror=alert(1)>"
TOTALS_COLOUR = (0xD9, 0x48, 0x0F)  # the second series' colour in dashboard.html (Tickets, Totals: by name)


def get(url: str, host: str | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a request to the dashboard (``host``: the Host header sent)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request(method, parts.path or "/", headers={"Host": host} if host else {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def samples_after(board: Dashboard, count: int) -> None:
    """Wait for ``count`` more lag samples."""
    seen = len(board.lag)
    wait_until(lambda: len(board.lag) >= seen + count)


@pytest.fixture
def running(store: EventStore, dsn: str) -> Iterator[tuple[Dashboard, Daemon]]:
    """A store with inline and daemon-built async projections, a dead letter whose message and stream are
    markup, a daemon holding Tickets, and a dashboard sampling while Totals (held by no one) falls behind."""
    deploy(store, FILES, lifecycles={"Totals": "async", "Tickets": "async"}, on_error={"Tickets": "dead-letter"})
    store.append({"id": "<b>t1</b>", "type": "Ticket", "data": [{"$type": "Noted", "bad": True, "text": XSS}]})
    store.append({"id": "t2", "type": "Ticket", "data": {"$type": "Noted", "text": "fine"}})
    store.append({"id": "a1", "type": "Account", "data": {"$type": "Deposited", "amount": 5}})
    Daemon(dsn).run(until_caught_up=True)  # builds Totals and Tickets
    with daemon_thread(dsn, names=["Tickets"]) as worker, Dashboard(dsn, port=0, interval=0.05) as board:
        wait_until(lambda: any(d["units"] for d in board_json(board, "api/status")["daemons"]))
        for n in range(1, 6):  # Totals's lag grows with each append: samples of it rising
            store.append({"id": "a1", "data": [{"$type": "Deposited", "amount": 1}] * n})
            samples_after(board, 2)  # the second begun after the append
        yield board, worker


def board_json(board: Dashboard, path: str) -> dict:
    status, _, body = get(board.url + path)
    assert status == 200, body
    return json.loads(body)


def test_the_api_shows_projections_daemons_lag_and_dead_letters(running: tuple[Dashboard, Daemon]) -> None:
    board, worker = running
    status = board_json(board, "api/status")
    rows = {p["name"]: p for p in status["projections"]}
    assert sorted(rows) == ["Balance", "Tickets", "Totals"]
    assert (rows["Balance"]["lifecycle"], rows["Balance"]["status"]) == ("inline", "current")
    assert (rows["Totals"]["status"], rows["Totals"]["lagEvents"], rows["Totals"]["holder"]) == ("running", 15, None)
    assert (rows["Tickets"]["deadLetters"], rows["Tickets"]["holder"]) == (1, worker.id)
    assert [(d["id"], d["alive"], d["units"]) for d in status["daemons"]] == [(worker.id, True, 1)]
    [letter] = status["deadLetters"]
    assert (letter["streamId"], letter["error"]["error"]["message"], status["deadLettersTotal"]) == (
        "<b>t1</b>",
        XSS,
        1,
    )
    lag = board_json(board, "api/lag")
    totals = [v for v in lag["series"]["Totals"] if v is not None]
    assert len(lag["times"]) == len(totals) >= 10 and totals == sorted(totals) and totals[-1] == 15
    assert set(totals) >= {1, 3, 6, 10, 15}, "a sample after each append"
    assert board_json(board, "healthz")["ok"] is True


def test_only_the_page_s_script_runs_and_only_get_is_served(running: tuple[Dashboard, Daemon]) -> None:
    board, _ = running
    status, headers, page = get(board.url)
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"Tickets" not in page, "the page holds no data: its script fetches it"
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+'$", headers["Content-Security-Policy"])
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert get(board.url + "nope")[0] == 404
    # Another name for 127.0.0.1 (DNS rebinding: a page elsewhere reading the dashboard) is refused.
    assert get(board.url + "api/status", host="evil.example:80")[0] == 421
    port = board.url.rsplit(":", 1)[1].rstrip("/")
    assert get(board.url + "healthz", host=f"localhost:{port}")[0] == 200
    assert get(board.url + "api/status", method="POST")[0] == 501


def test_a_port_in_use_or_a_bad_interval_is_an_input_error(dsn: str) -> None:
    with Dashboard(dsn, port=0) as board:
        port = int(board.url.rsplit(":", 1)[1].rstrip("/"))
        with pytest.raises(InputError, match=f"cannot listen on 127.0.0.1 port {port}: Address already in use"):
            Dashboard(dsn, port=port)
    with pytest.raises(InputError, match="sample interval"):
        Dashboard(dsn, port=0, interval=10, window=5)


def test_the_dashboard_s_connections_only_read(dsn: str) -> None:
    with psycopg.connect(read_only(dsn), autocommit=True) as conn:
        assert conn.execute("select count(*) from pge_events").fetchone() == (0,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("delete from pge_daemons")
    kept = read_only(dsn + " options='-c statement_timeout=1234'")
    with psycopg.connect(kept) as conn:
        assert conn.execute("show statement_timeout").fetchone() == ("1234ms",)
        assert conn.execute("show default_transaction_read_only").fetchone() == ("on",)


def test_the_command_prints_its_url_serves_and_stops_on_sigterm(store: EventStore, dsn: str) -> None:
    process = subprocess.Popen(
        [str(JSPROJ), "dashboard", "--dsn", dsn, "--port", "0", "--interval", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = re.fullmatch(r"dashboard at (http://127\.0\.0\.1:\d+/)\n", line)
        assert url, (line, process.stderr.read() if process.poll() is not None else "")
        status, _, body = get(url.group(1) + "healthz")
        assert status == 200 and json.loads(body)["ok"] is True
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_command_s_defaults_are_the_library_s() -> None:
    assert (cli.DEFAULT_PORT, cli.DEFAULT_INTERVAL, cli.DEFAULT_WINDOW) == (
        dashboard.DEFAULT_PORT, dashboard.DEFAULT_INTERVAL, dashboard.DEFAULT_WINDOW,
    )  # fmt: skip


def test_the_doc_s_python_example_runs(dsn: str) -> None:
    [code] = [b for lang, _, b in blocks(ROOT / "docs" / "dashboard.md") if lang == "python"]
    exec(compile(code, "dashboard.md", "exec"), {"dsn": dsn})  # noqa: S102 -- the doc's own example


# -- the page in a real browser ----------------------------------------------------------------------------


def chromium() -> str:
    """Chromium's path; a skip where it is not installed (`make chromium` installs it as root), a failure in CI."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("JSPROJ_REQUIRE_CHROMIUM"):
        pytest.fail("Chromium is not installed, and JSPROJ_REQUIRE_CHROMIUM requires it")
    pytest.skip("Chromium is not installed and could not be installed here (`make chromium` does it as root)")


def test_without_chromium_the_page_test_skips_except_where_it_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("JSPROJ_REQUIRE_CHROMIUM", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium is not installed"):
        chromium()
    monkeypatch.setenv("JSPROJ_REQUIRE_CHROMIUM", "1")
    with pytest.raises(pytest.fail.Exception, match="JSPROJ_REQUIRE_CHROMIUM requires it"):
        chromium()


def headless(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    command = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
               "--window-size=1200,900", "--virtual-time-budget=5000", *args, url]  # fmt: skip
    done = subprocess.run(command, capture_output=True, timeout=180, env={**os.environ, "HOME": str(profile)})
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done


@pytest.mark.slow  # two Chromium runs
def test_the_page_renders_the_tables_the_chart_and_markup_as_text(
    running: tuple[Dashboard, Daemon], tmp_path: Path
) -> None:
    board, worker = running
    dom = headless(board.url, tmp_path / "profile", "--dump-dom").stdout.decode()
    cells = [unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", dom, re.S)]
    assert {"Balance", "Tickets", "Totals", worker.id, "<b>t1</b>"} <= set(cells)
    # The dead letter's message is text in its cell (escaped in the DOM): no element was made of it.
    assert re.search(r'<td class="error">[^<]*: &lt;img src=x onerror=alert\(1\)&gt;</td>', dom)
    assert "<img" not in dom and "<b>" not in dom
    [d] = re.findall(r'<path class="series" data-name="Totals" d="([^"]+)"', dom)
    points = [tuple(map(float, p.split())) for p in re.findall(r"[ML]([\d.]+ [\d.]+)", d)]
    assert len(points) >= 10 and len({y for _, y in points}) >= 5, "a line over samples of a rising lag"
    assert all(x2 >= x1 for (x1, _), (x2, _) in itertools.pairwise(points))

    shot = tmp_path / "dashboard.png"
    headless(board.url, tmp_path / "profile", f"--screenshot={shot}")
    width, rows = png_rows(shot.read_bytes(), limit=450)  # the chart is near the top
    assert width == 1200
    # The line rises over the chart's height (~200 px); the legend's swatch of that colour is 12 px high.
    drawn = sum(1 for row in rows if any(near(row[x : x + 3], TOTALS_COLOUR) for x in range(0, len(row), 4)))
    assert drawn >= 100, f"the Totals line is drawn in the screenshot ({drawn} rows show its colour)"


# Two async projections a daemon built, then left behind by the same events (equal lags: one line on the
# other), one of them with a version 2 deployed beside its version 1.
COUNT = "projections.aggregate('Count').by({ $any: function (s, e) { s.n = (s.n || 0) + 1; } }).async();"
NOTES = """projections.projectStream('Ticket').named('Notes').by({
  Noted: function (s, e) { s.notes = (s.notes || 0) + 1; }
}).async()"""
COUNT_COLOUR, NOTES_COLOUR = (0x1F, 0x6F, 0xEB), (0xD9, 0x48, 0x0F)  # the first two of dashboard.html (by name)


@pytest.fixture
def equal_lags(store: EventStore, dsn: str) -> Iterator[Dashboard]:
    """A dashboard sampling Count and Notes (version 1 deployed, version 2 pending) falling behind together."""
    deploy(store, [{"file": "Count.js", "source": COUNT}, {"file": "Notes.js", "source": NOTES + ";"}])
    store.append({"id": "t1", "type": "Ticket", "data": {"$type": "Noted"}})
    Daemon(dsn).run(until_caught_up=True)
    report = deploy(
        store, [{"file": "Count.js", "source": COUNT}, {"file": "Notes.js", "source": NOTES + ".version(2);"}]
    )
    assert report.pending == ["Notes"]
    with Dashboard(dsn, port=0, interval=0.05) as board:
        for n in range(1, 6):
            store.append({"id": "t1", "data": [{"$type": "Noted"}] * n})
            samples_after(board, 2)
        yield board


@pytest.mark.slow  # two Chromium runs
def test_lines_of_equal_lag_are_told_apart_and_versions_show(equal_lags: Dashboard, tmp_path: Path) -> None:
    board = equal_lags
    dom = headless(board.url, tmp_path / "profile", "--dump-dom").stdout.decode()
    rows = {cells[0]: cells for cells in table_rows(dom, "projections")}
    heads = [unescape(h) for h in re.findall(r"<th>(.*?)</th>", dom.split('id="projections"')[1].split("</thead>")[0])]
    shown = {name: dict(zip(heads, cells, strict=True)) for name, cells in rows.items()}
    assert (shown["Notes"]["version"], shown["Notes"]["pending"]) == ("1", "v2 pending: 0 events read")
    assert (shown["Count"]["version"], shown["Count"]["pending"]) == ("1", "")
    paths = {m["name"]: m for m in re.finditer(r'<path class="series" data-name="(?P<name>\w+)" d="(?P<d>[^"]+)" '
                                                r'fill="none" stroke="(?P<stroke>[^"]+)" stroke-width="3" '
                                                r'stroke-dasharray="(?P<dash>[^"]+)"', dom)}  # fmt: skip
    assert sorted(paths) == ["Count", "Notes"] and paths["Count"]["d"] == paths["Notes"]["d"], "one line on the other"
    assert paths["Count"]["stroke"] != paths["Notes"]["stroke"] and paths["Count"]["dash"] != paths["Notes"]["dash"]
    labels = dict(re.findall(r'<text class="end-label" data-name="(\w+)" x="[\d.]+" y="([\d.]+)"', dom))
    assert sorted(labels) == ["Count", "Notes"] and abs(float(labels["Count"]) - float(labels["Notes"])) >= 12
    legend = dom.split('<div id="legend">')[1].split("</div>")[0]
    assert re.findall(r'<span data-name="(\w+)">', legend) == ["Count", "Notes"]
    assert len(re.findall(r"\b15 behind\b", legend)) == 2

    shot = tmp_path / "dashboard.png"
    headless(board.url, tmp_path / "profile", f"--screenshot={shot}")
    _, pixels = png_rows(shot.read_bytes(), limit=450)
    plot = range(100, 800)  # the chart's lines, left of the names at their ends (a legend's key: 3 rows at most)
    for name, colour in (("Count", COUNT_COLOUR), ("Notes", NOTES_COLOUR)):
        drawn = sum(1 for row in pixels if any(near(row[4 * x : 4 * x + 3], colour) for x in plot))
        assert drawn >= 50, f"the {name} line shows under the other ({drawn} rows show its colour)"


def table_rows(dom: str, table: str) -> list[list[str]]:
    """The cells of each row of a table of the page, as text."""
    body = dom.split(f'id="{table}"')[1].split("<tbody>")[1].split("</tbody>")[0]
    return [[unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in body.split("<tr>")[1:]]


def near(pixel: bytes, colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 24 for a, b in zip(pixel, colour, strict=True))


def png_rows(data: bytes, limit: int) -> tuple[int, list[bytes]]:
    """The width and the first ``limit`` rows (RGBA) of an 8-bit, non-interlaced PNG: the chunks, zlib, filters."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, compressed = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk, pos = data[pos + 8 : pos + 8 + length], pos + 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            compressed += chunk
    assert (depth, interlace) == (8, 0) and colour in (2, 6), "Chromium writes RGB(A), 8 bits, no interlace"
    size = 3 if colour == 2 else 4
    raw, stride, previous, rows = zlib.decompress(compressed), width * size, bytearray(width * size), []
    for y in range(min(height, limit)):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a, b = line[i - size] if i >= size else 0, previous[i]
            c = previous[i - size] if i >= size else 0
            line[i] = (line[i] + [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]) & 255
        rows.append(bytes(line) if size == 4 else b"".join(line[i : i + 3] + b"\xff" for i in range(0, stride, 3)))
        previous = line
    return width, rows


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c
