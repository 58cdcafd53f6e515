"""One HTML file per run: `page` wraps any body (the benchmark's tables and charts);
`matrix_body` draws the client x server grid of a results.json, each cell opening to its
cases (checks, reasons, rerun command, logs, capture) with a filter by case and state.

The page loads nothing: styles and script are inline and allowed by their hashes in the
Content-Security-Policy, whose `default-src 'none'` blocks any request; images are data:
URIs. The script only filters, and records on <body> what the browser fetched
(`data-requests`) or the policy blocked (`data-blocked`), for the browser tests.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
import os
import platform
import shlex
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..core.paths import REPO
from ..core.process import run

#: result states, each with its colour (STYLE) and meaning (the legend)
STATES = {"passed": "every check held", "failed": "a check did not hold",
          "error": "the run itself broke (did not start, crashed, hung)",
          "unsupported": "an implementation lacks a feature the case needs: not run"}
LOG_LIMIT = 64 * 1024  # bytes shown of each log; the file is linked

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#f3f3f3}
.box{display:inline-block;width:.9em;height:.9em;margin:1px;border-radius:2px}
.s-passed{background:#2e7d32;color:#fff}.s-failed{background:#c62828;color:#fff}
.s-error{background:#ef6c00;color:#fff}.s-unsupported{background:#9e9e9e;color:#fff}
.badge{padding:0 .4em;border-radius:3px;font-size:.85em}
.count{font-size:.85em}
.group{display:none;border-top:2px solid #888;margin-top:1em}
.group:target,.group.shown,body.filtering .group{display:block}
pre{background:#f6f6f6;padding:.5em;max-height:24em;overflow:auto;white-space:pre-wrap}
summary{cursor:pointer}details.case{margin:.3em 0}[hidden]{display:none!important}
"""

SCRIPT = """
"use strict";
const blocked = [];
document.addEventListener("securitypolicyviolation", (e) => {
  blocked.push(e.blockedURI);
  document.body.dataset.blocked = blocked.join(" ");
});
function applyFilter() {
  const c = document.getElementById("f-case").value;
  const s = document.getElementById("f-state").value;
  document.body.classList.toggle("filtering", Boolean(c || s));
  for (const el of document.querySelectorAll("[data-case]")) {
    el.hidden = Boolean((c && el.dataset.case !== c) || (s && el.dataset.state !== s));
  }
}
for (const id of ["f-case", "f-state"]) {
  const el = document.getElementById(id);
  if (el) el.addEventListener("change", applyFilter);
}
function reveal() {
  const el = document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (el && el.tagName === "DETAILS") {
    el.open = true;
    el.closest(".group").classList.add("shown");
    el.scrollIntoView();
  } else if (el && el.classList.contains("group")) {
    const failed = el.querySelector("details:not([data-state=passed])");
    if (failed) failed.open = true;
  }
}
window.addEventListener("hashchange", reveal);
window.addEventListener("load", () => {
  reveal();
  document.body.dataset.requests = String(performance.getEntriesByType("resource").length);
  document.body.dataset.blocked = blocked.join(" ");
});
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (f"default-src 'none'; script-src {_hash(SCRIPT)}; style-src {_hash(STYLE)}; "
       "img-src data:; base-uri 'none'; form-action 'none'")


def page(title: str, meta: dict[str, object], body: str) -> str:
    """A whole document: title, the run's metadata, `body` (trusted HTML)."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            f'<meta name="referrer" content="no-referrer">\n<title>{esc(title)}</title>\n'
            f"<style>{STYLE}</style></head>\n<body><h1>{esc(title)}</h1>\n{body}\n"
            f"<h2>run</h2>{table(['', ''], meta.items())}\n<script>{SCRIPT}</script>"
            "</body></html>\n")


def write(path: Path, title: str, meta: dict[str, object], body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(title, meta, body), encoding="utf-8")
    return path


def table(headers: Iterable[object], rows: Iterable[Iterable[object]]) -> str:
    headers = [str(h) for h in headers]
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>" if any(headers) \
        else ""
    body = "".join("<tr>" + "".join(f"<td>{esc(_words(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table>{head}{body}</table>"


def _words(value: object) -> object:
    return shlex.join(map(str, value)) if isinstance(value, list) else value


def figure(png: Path, caption: str = "") -> str:
    """A PNG inlined as a data: URI (the policy allows no other image source)."""
    data = base64.b64encode(png.read_bytes()).decode()
    return (f'<figure><img alt="{esc(caption or png.name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption or png.name)}</figcaption></figure>")


def _first_line(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    result = run(argv, role="version", timeout=10)
    lines = (result.out_lines or result.err_lines) if result.exit_code == 0 else []
    return lines[0].strip() if lines else ""


def run_metadata() -> dict[str, object]:
    """Commit, host, time, load and tool versions: what a reader needs to trust a run."""
    commit = _first_line(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"])
    if commit and _first_line(["git", "-C", str(REPO), "status", "--porcelain",
                               "--untracked-files=no"]):
        commit += " (with local changes)"
    tools = {"python": platform.python_version(), "cc": _first_line(["cc", "--version"]),
             "tshark": _first_line(["tshark", "--version"]),
             "docker": _first_line(["docker", "--version"])}
    return {"commit": commit or "unknown", "host": platform.node(),
            "time": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} CPUs)",
            "tools": "; ".join(f"{k}: {v}" for k, v in tools.items() if v)}


# --- the matrix grid ---------------------------------------------------------------------

def legend() -> str:
    return "<p>" + " ".join(f'<span class="badge s-{s}">{s}</span> {esc(why)};'
                            for s, why in STATES.items()) + "</p>"


def filters(cases: list[str]) -> str:
    def select(ident: str, label: str, values: Iterable[str]) -> str:
        options = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
        return (f'<label>{label} <select id="{ident}"><option value="">all</option>'
                f"{options}</select></label> ")
    return "<p>" + select("f-case", "case", cases) + select("f-state", "state", STATES) + "</p>"


def group_id(cell: dict) -> str:
    return f"g-{cell['client']}-{cell['server']}-{cell['cipher']}"


def grid(cipher: str, cells: list[dict]) -> str:
    clients = list(dict.fromkeys(c["client"] for c in cells))
    servers = list(dict.fromkeys(c["server"] for c in cells))
    rows = [f"<h2>cipher {esc(cipher)}</h2><table class=\"grid\"><tr><th>client \\ server</th>"
            + "".join(f"<th>{esc(s)}</th>" for s in servers) + "</tr>"]
    for client in clients:
        rows.append(f"<tr><th>{esc(client)}</th>")
        for server in servers:
            mine = [c for c in cells if c["client"] == client and c["server"] == server]
            boxes = "".join(
                f'<a class="box s-{esc(c["status"])}" href="#c-{esc(c["id"])}" '
                f'data-id="{esc(c["id"])}" data-case="{esc(c["case"])}" '
                f'data-state="{esc(c["status"])}" title="{esc(c["case"])}: '
                f'{esc(c["status"])}"></a>' for c in mine)
            passed = sum(1 for c in mine if c["status"] == "passed")
            link = (f'{boxes} <a class="count" href="#{esc(group_id(mine[0]))}">'
                    f"{passed}/{len(mine)}</a>" if mine else "-")
            rows.append(f"<td>{link}</td>")
        rows.append("</tr>")
    return "".join(rows) + "</table>"


def _text(path: Path) -> str:
    data = path.read_bytes()
    more = f"\n... {len(data) - LOG_LIMIT} bytes more in {path.name}" if len(data) > LOG_LIMIT \
        else ""
    return data[:LOG_LIMIT].decode("utf-8", "backslashreplace") + more


def cell_files(logs: Path, base: Path) -> str:
    """The cell's folder: each program's command, stdout and stderr, then captures (the
    decoded text shown, the pcap linked)."""
    if not logs.is_dir():
        return ""
    parts = []
    for cmd in sorted(logs.glob("*.cmd")):
        parts.append(f"<h4>{esc(cmd.stem)}</h4><pre>{esc(_text(cmd))}</pre>")
        for stream in ("stdout", "stderr"):
            path = cmd.with_suffix("." + stream)
            if path.exists() and path.stat().st_size:
                parts.append(f"<p>{stream}</p><pre>{esc(_text(path))}</pre>")
    for path in sorted(logs.glob("capture*")):
        href = esc(os.path.relpath(path, base))
        if path.suffix == ".txt":
            parts.append(f'<h4>{esc(path.name)} (<a href="{href}">file</a>)</h4>'
                         f"<pre>{esc(_text(path))}</pre>")
        else:
            parts.append(f'<p>packet capture: <a href="{href}">{esc(path.name)}</a></p>')
    return "".join(parts)


def case_details(cell: dict, base: Path) -> str:
    state = esc(cell["status"])
    reasons = cell.get("reasons") or []
    checks = table(["check", "result", "reasons"],
                   ((name, "held" if not why else "failed", "; ".join(why))
                    for name, why in (cell.get("checks") or {}).items()))
    first = f" — {esc(reasons[0])}" if reasons and state != "passed" else ""
    body = [checks, "<ul>" + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>"]
    if cell.get("rerun"):
        body.append(f"<p>rerun: <code>{esc(cell['rerun'])}</code></p>")
    if cell.get("logs"):
        body.append(cell_files(Path(cell["logs"]), base))
    return (f'<details class="case" id="c-{esc(cell["id"])}" data-case="{esc(cell["case"])}" '
            f'data-state="{state}"><summary><span class="badge s-{state}">{state}</span> '
            f'{esc(cell["case"])} ({cell.get("duration", 0):.1f} s){first}</summary>'
            + "".join(body) + "</details>")


def matrix_body(cells: list[dict], base: Path) -> str:
    """The grids (one per cipher), then per grid cell a section with its cases. `cells`:
    results.json's entries (id, client, server, case, cipher, status, reasons, checks,
    duration, logs, rerun); links are relative to `base`, the page's folder."""
    ciphers = list(dict.fromkeys(c["cipher"] for c in cells))
    counts = ", ".join(f"{sum(1 for c in cells if c['status'] == s)} {s}" for s in STATES)
    parts = [f"<p>{len(cells)} cells: {counts}. A case's box opens it; a cell's count "
             "opens all its cases.</p>", legend(),
             filters(list(dict.fromkeys(c["case"] for c in cells)))]
    parts += [grid(cipher, [c for c in cells if c["cipher"] == cipher]) for cipher in ciphers]
    groups: dict[str, list[dict]] = {}
    for cell in cells:
        groups.setdefault(group_id(cell), []).append(cell)
    for ident, mine in groups.items():
        head = f"{mine[0]['client']} client → {mine[0]['server']} server, {mine[0]['cipher']}"
        parts.append(f'<section class="group" id="{esc(ident)}"><h3>{esc(head)}</h3>'
                     + "".join(case_details(c, base) for c in mine) + "</section>")
    return "\n".join(parts)
