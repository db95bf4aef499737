#!/usr/bin/env python3
"""Merges a nightly run (nightly/DATE/) into summary.json and writes index.html.

Reads what the run left: run.json, each shard's results-K.jsonl (a header, a plan line per
property, a line per finished batch), the shards' failure reports, phases/*.json, faults.txt,
ctest.log, and earlier nights' summary.json beside this one for the trend and for what is new
since the last run (the newest earlier night, or the summary --since names). Writes both files
whole (temp file, then rename). The page is static: inline CSS and SVG, no script.
Exit status: 0 when the night passed, 1 when anything failed or is missing, 2 on bad input.
A line or file the merge cannot use (not a JSON object, a key missing or of the wrong type) is
named on stderr with its file and line, left out, and fails the night; the rest is merged.

usage: nightly_report.py OUT [--seconds S] [--since SUMMARY.json]
"""
import glob
import html
import json
import os
import re
import sys

TREND_NIGHTS = 30

# What the merge could not use, one line each ("FILE: line N: ..."): printed, kept in
# summary.json, and the night fails.
PROBLEMS = []

# The keys each kind of line must hold, and their types (bool is no number here).
PLAN_KEYS = {"plan": str, "cases": int, "batches": int, "first": int, "end": int}
BATCH_KEYS = {"property": str, "batch": int, "case_seed": int, "cases": int, "status": str, "seconds": (int, float)}
FAILED_KEYS = {"counterexample": str, "reproduce": str, "message": str}
RUN_KEYS = {"date": str, "seed": int, "shards": int, "max_success": int}
NIGHT_KEYS = {"date": str, "cases": int, "failures": int, "seconds": (int, float), "passed": bool}
PHASE_KEYS = {"phase": str, "exit_status": (int, str), "seconds": (int, float), "log": str}


def problem(msg):
    PROBLEMS.append(msg)
    print(f"nightly-merge: {msg}", file=sys.stderr)


def missing_keys(obj, keys):
    """What `obj` lacks of `keys` (name: type), as words: "no 'cases'", "'seed' is "x", not int"."""
    out = []
    for key, kind in keys.items():
        if key not in obj:
            out.append(f"no '{key}'")
            continue
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (not isinstance(obj[key], kinds) or (isinstance(obj[key], bool) and bool not in kinds)):
            names = " or ".join(k.__name__ for k in kinds)
            out.append(f"'{key}' is {json.dumps(obj[key])}, not {names}")
    return out


def usable(obj, keys, where):
    """True when `obj` has every key of its type; otherwise names what is missing, and False."""
    wrong = missing_keys(obj, keys)
    if wrong:
        problem(f"{where}: {', '.join(wrong)}; left out")
    return not wrong


def fail(msg, status=2):
    print(f"nightly-merge: {msg}", file=sys.stderr)
    sys.exit(status)


def write_whole(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path, default=None):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def engine_of(header):
    flags = header.get("shaping_flags", [])
    return flags[flags.index("--engine") + 1] if "--engine" in flags[:-1] else "miniinfer"


def engine_flags(out):
    """Per engine, the flags that shaped its cases (from the results files' headers)."""
    flags = {}
    for path in sorted(glob.glob(os.path.join(out, "shards", "results-*.jsonl"))):
        header, _, _ = read_results(path)
        if header:
            flags.setdefault(engine_of(header), header.get("shaping_flags", []))
    return flags


def read_results(path, report=False):
    """The header, and the complete lines as (line number, object); a torn last line is counted,
    not used. A line that is not a JSON object is left out and, when `report`, named."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    parts = text.split("\n")
    torn = 1 if parts[-1] else 0
    lines = []
    for i, part in enumerate(parts[:-1]):
        try:
            j = json.loads(part)
        except ValueError:
            if i == len(parts) - 2:
                torn += 1
            elif report:
                problem(f"{path}: line {i + 1}: not JSON (the file is damaged); left out")
            continue
        if isinstance(j, dict):
            lines.append((i + 1, j))
        elif report:
            problem(f"{path}: line {i + 1}: {json.dumps(j)[:60]} is not a JSON object; left out")
    if not lines or lines[0][0] != 1 or "props_results" not in lines[0][1]:
        if report and text:
            problem(f"{path}: line 1: no props results header; the file is left out")
        return None, [], torn
    return lines[0][1], lines[1:], torn


def shrunk_prompt(case):
    if not case:
        return ""
    if case.get("property") == "p11" or "program" in case:
        return json.dumps(case.get("program", case), separators=(",", ":"))[:2000]
    return " | ".join(p.get("text", "") for p in case.get("prompts", []))


def case_tokens(j):
    """A case's size as props/groups.cpp counts it: prompt ids, program tokens, tokens drawn."""
    n = 0
    if isinstance(j, dict):
        for k, v in j.items():
            if k in ("ids", "tokens") and isinstance(v, list):
                n += sum(len(t) if isinstance(t, list) else int(isinstance(t, int)) for t in v)
            elif k in ("max_new_tokens", "n") and isinstance(v, int) and not isinstance(v, bool):
                n += v
            else:
                n += case_tokens(v)
    elif isinstance(j, list):
        n += sum(case_tokens(v) for v in j)
    return n


def site_of(fp):
    if not isinstance(fp, dict):
        return "not located"
    layer, head, comp = fp.get("layer", -1), fp.get("head", -1), fp.get("component", "?")
    if layer < 0:
        return comp
    return f"layer {layer}, {'all heads' if head < 0 else f'head {head}'}, {comp}"


def cause_of(report):
    """The report's cause; without one, what its first parting names (as props/groups.cpp)."""
    if isinstance(report.get("cause"), str):
        return report["cause"]
    if "error" in report:
        return "engine-error"
    fp = report.get("first_parting")
    if not isinstance(fp, dict):
        return "not located"
    comp = fp.get("component", "")
    return comp if comp in ("sampler", "cursor") else "bookkeeping" if comp in ("pool", "prefix") else "forward"


def group_counterexamples(counterexamples):
    """The night's failures by (engine, first parting site, verdict, cause), as props groups a run's."""
    groups = {}
    for c in counterexamples:
        key = (c["engine"], json.dumps(c["site"], sort_keys=True), c["verdict"] or "none", c["cause"])
        g = groups.setdefault(key, {"engine": c["engine"], "site": site_of(c["site"]), "first_parting": c["site"],
                                    "verdict": c["verdict"] or "none", "cause": c["cause"], "count": 0,
                                    "properties": [], "smallest": None})
        g["count"] += 1
        if c["id"] not in g["properties"]:
            g["properties"].append(c["id"])
        if g["smallest"] is None or c["tokens"] < g["smallest"]["tokens"]:
            g["smallest"] = {"property": c["id"], "tokens": c["tokens"], "replay": c["replay"] or c["reproduce"],
                             "headline": c["headline"]}
    return sorted(groups.values(), key=lambda g: -g["count"])


def merge_props(out, shards):
    """Per (engine, property): cases, failures, time, coverage; and the counterexamples."""
    props, counterexamples = {}, []
    coverage = {"duplicates": 0, "missing_batches": 0, "torn_lines": 0, "results_files": 0}
    seen = {}
    shard_files = sorted(glob.glob(os.path.join(out, "shards", "results-*.jsonl")))
    for path in shard_files:
        header, lines, torn = read_results(path, report=True)
        coverage["torn_lines"] += torn
        if header is None:
            continue
        coverage["results_files"] += 1
        engine = engine_of(header)
        shard = header.get("shard", "1/1")
        for n, j in lines:
            where = f"{path}: line {n}"
            if "plan" in j:
                if not usable(j, PLAN_KEYS, where):
                    continue
                key = (engine, j["plan"])
                p = props.setdefault(key, {"engine": engine, "id": j["plan"], "property": j.get("sentence", ""),
                                           "planned_cases": j["cases"], "batches": j["batches"], "cases": 0,
                                           "failures": 0, "expected": 0, "seconds": 0.0, "owned": set(),
                                           "done": set(),
                                           "stopped": set()})
                p["owned"].update(range(j["first"], j["end"]))
                continue
            if "batch" not in j:
                problem(f"{where}: neither a plan nor a batch; left out")
                continue
            if not usable(j, BATCH_KEYS, where):
                continue
            if j["status"] not in ("passed", "failed"):
                problem(f"{where}: 'status' is {json.dumps(j['status'])}, not passed or failed; left out")
                continue
            if j["status"] == "failed" and not usable(j, FAILED_KEYS, where):
                continue
            key = (engine, j["property"])
            p = props.get(key)
            if p is None:
                problem(f"{where}: a batch of {j['property']}, which has no plan before it; left out")
                continue
            bkey = (engine, j["property"], j["batch"])
            if bkey in seen:
                coverage["duplicates"] += 1
                continue
            seen[bkey] = True
            p["done"].add(j["batch"])
            p["seconds"] += j["seconds"]
            if j["status"] == "passed":
                p["cases"] += j["cases"]
                continue
            p["stopped"].add(shard)
            # props/expected-failures.json expects it: shown, not counted as a failure of the night.
            if j.get("expected"):
                p["expected"] += 1
                p["expected_reason"] = j["expected"]
                continue
            p["failures"] += 1
            case_file = j.get("counterexample", "")
            report_file = case_file.replace(".case.json", ".report.json") if case_file else ""
            svg_file = case_file.replace(".case.json", ".heatmap.svg") if case_file else ""
            html_file = case_file.replace(".case.json", ".report.html") if case_file else ""
            report = read_json(report_file, {}) if report_file else {}
            case = read_json(case_file, {}) if case_file else {}
            counterexamples.append({
                "engine": engine, "id": j["property"], "shard": shard, "batch": j["batch"],
                "case_seed": j["case_seed"],
                "headline": report.get("headline", "") or j.get("message", "").split("\n")[0],
                "verdict": report.get("verdict", ""),
                "site": ({k: report["first_parting"].get(k, -1 if k != "component" else "?")
                          for k in ("layer", "head", "component")}
                         if isinstance(report.get("first_parting"), dict) else None),
                "cause": cause_of(report),
                "tokens": case_tokens(case),
                "prompt": shrunk_prompt(case),
                "reproduce": j.get("reproduce", ""),
                "replay": f"build-nightly/props --replay {case_file}" if case_file else "",
                "case_file": case_file,
                "heatmap_svg": svg_file if svg_file and os.path.exists(svg_file) else "",
                # props's own page for this failure (heatmap cells open their tables, the parting
                # rows side by side), as a link from index.html.
                "report_html": os.path.relpath(html_file, out) if html_file and os.path.exists(html_file) else "",
            })
    rows = []
    for (engine, pid), p in sorted(props.items(), key=lambda kv: (kv[0][0], int(kv[0][1][1:] or 0))):
        all_batches = set(range(p["batches"]))
        missing = all_batches - p["done"]
        unowned = all_batches - p["owned"]
        # A shard stops a property at its first failure: its later batches are not missing.
        if p["failures"] == 0 and p["expected"] == 0:
            coverage["missing_batches"] += len(missing)
        status = ("failed" if p["failures"] else "expected-failure" if p["expected"] else
                  "passed" if not missing and not unowned else "incomplete")
        rows.append({"engine": engine, "id": pid, "property": p["property"], "status": status,
                     "planned_cases": p["planned_cases"], "cases": p["cases"], "failures": p["failures"],
                     "seconds": round(p["seconds"], 2), "batches": p["batches"],
                     "batches_done": len(p["done"]), "batches_unowned": len(unowned),
                     **({"expected": p["expected_reason"]} if p["expected"] else {})})
    return rows, counterexamples, coverage


def parse_ctest(path):
    tests = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.search(r"Test\s+#\d+: (\S+) \.*\s*(\*\*\*)?(Passed|Failed|Not Run|Timeout|Skipped|Exception\S*)"
                              r".*?([\d.]+) sec", line)
                if m:
                    tests.append({"name": m.group(1), "status": m.group(3).lower(), "seconds": float(m.group(4))})
    except OSError:
        pass
    return tests


def sibling_summaries(out):
    """(path, summary.json's JSON) of every night beside `out` (this one too)."""
    for path in glob.glob(os.path.join(os.path.dirname(os.path.abspath(out)), "*", "summary.json")):
        yield path, read_json(path)


def earlier_nights(out, date):
    nights = []
    for path, s in sibling_summaries(out):
        wrong = missing_keys(s, NIGHT_KEYS) if isinstance(s, dict) else ["not a JSON object"]
        if wrong:
            # An earlier night's damage is named, but does not fail tonight.
            print(f"nightly-merge: {path}: {', '.join(wrong)}; left out of the trend", file=sys.stderr)
            continue
        if s["date"] >= date:
            continue
        nights.append({"date": s["date"], "cases": s.get("cases", 0), "failures": s.get("failures", 0),
                       "seconds": s.get("seconds", 0), "passed": s.get("passed", False)})
    return sorted(nights, key=lambda n: n["date"])[-(TREND_NIGHTS - 1):]


def group_key(g):
    return (g["engine"], g["site"], g["verdict"], g["cause"])


def by_cause(groups):
    """The failures by cause, most first: each cause's count, properties and groups (by site)."""
    causes = {}
    for g in groups:
        c = causes.setdefault(g["cause"], {"cause": g["cause"], "count": 0, "properties": [], "sites": []})
        c["count"] += g["count"]
        c["properties"] += [p for p in g["properties"] if p not in c["properties"]]
        c["sites"].append(f'{g["engine"]}: {g["site"]} ({g["verdict"]}, {g["count"]})')
    return sorted(causes.values(), key=lambda c: (-c["count"], c["cause"]))


def earlier_summary(out, date, named=None):
    """(path, summary) of the night to compare with: `named`, or the newest earlier night beside
    this one whose summary.json holds per-property results; (None, None) when there is none."""
    if named:
        s = read_json(named)
        if not isinstance(s, dict) or not isinstance(s.get("properties"), list):
            fail(f"--since {named}: not a nightly summary.json with 'properties'")
        return named, s
    best = (None, None)
    for path, s in sibling_summaries(out):
        if (isinstance(s, dict) and isinstance(s.get("date"), str) and s["date"] < date and
                isinstance(s.get("properties"), list) and (best[1] is None or s["date"] > best[1]["date"])):
            best = (path, s)
    return best


def since_last(now, then):
    """What is new since the earlier night: failures new tonight, fixed ones (failed then, pass
    now), ones still failing, and groups (engine, site, verdict, cause) not seen then."""
    path, old = then
    if old is None:
        return {"compared_with": None, "note": "no earlier run to compare"}
    def status(s):
        return {(p.get("engine", "miniinfer"), p.get("id")): p.get("status") for p in s["properties"]
                if isinstance(p, dict)}
    was, is_ = status(old), status(now)
    name = lambda k: f"{k[1]}" if k[0] == "miniinfer" else f"{k[0]} {k[1]}"
    old_groups = {group_key(g) for g in old.get("groups", []) if isinstance(g, dict) and
                  all(k in g for k in ("engine", "site", "verdict", "cause"))}
    return {
        "compared_with": old.get("date"), "summary": path,
        "new_failures": [name(k) for k, st in sorted(is_.items()) if st == "failed" and was.get(k) != "failed"],
        "fixed": [name(k) for k, st in sorted(was.items()) if st == "failed" and is_.get(k) == "passed"],
        "still_failing": [name(k) for k, st in sorted(is_.items()) if st == "failed" and was.get(k) == "failed"],
        "new_groups": [f'{g["engine"]}: {g["site"]}, {g["verdict"]}, cause {g["cause"]} ({" ".join(g["properties"])})'
                       for g in now["groups"] if group_key(g) not in old_groups],
    }


def summarize(out, seconds, since=None):
    run = read_json(os.path.join(out, "run.json"))
    if run is None:
        fail(f"{out}/run.json is missing or not JSON: {out} is not a nightly run's folder")
    if not isinstance(run, dict):
        fail(f"{out}/run.json: line 1: not a JSON object: {out} is not a nightly run's folder")
    if missing_keys(run, RUN_KEYS):
        problem(f"{out}/run.json: {', '.join(missing_keys(run, RUN_KEYS))}")
        run = dict(run)
        run["date"] = run["date"] if isinstance(run.get("date"), str) else os.path.basename(os.path.normpath(out))
        run["seed"] = run["seed"] if isinstance(run.get("seed"), int) else None
        run["shards"] = run["shards"] if isinstance(run.get("shards"), int) else 1
        run["max_success"] = run["max_success"] if isinstance(run.get("max_success"), int) else None
    props, counterexamples, coverage = merge_props(out, run.get("shards", 1))
    phases = {}
    for path in sorted(glob.glob(os.path.join(out, "phases", "*.json"))):
        ph = read_json(path, {})
        name = os.path.basename(path)[:-len(".json")]
        if not isinstance(ph, dict):
            problem(f"{path}: line 1: not a JSON object; the phase counts as failed")
            ph = {}
        wrong = missing_keys(ph, PHASE_KEYS)
        if wrong:
            problem(f"{path}: {', '.join(wrong)}; the phase counts as failed")
            ph = {"exit_status": "unreadable", "seconds": 0, "log": ""}
        phases[ph.get("phase", name)] = {"exit_status": ph["exit_status"], "seconds": ph["seconds"], "log": ph["log"]}
    faults = []
    try:
        with open(os.path.join(out, "faults.txt"), encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    name, _, what = line.strip().partition(" ")
                    faults.append({"name": name, "description": what.strip()})
    except OSError:
        pass
    tests = parse_ctest(os.path.join(out, "ctest.log"))
    engines = sorted({p["engine"] for p in props})
    engine_settings = engine_flags(out)
    if "llamacpp" not in engines:
        llama = phases.get("llamacpp", {}).get("exit_status")
        engines_note = ("llama.cpp: not run (build-nightly/ has no llama.cpp)" if llama == "skipped"
                        else "llama.cpp: not run")
    else:
        engines_note = ""
    cases = sum(p["cases"] for p in props)
    failures = sum(p["failures"] for p in props)
    expected = set(run.get("phases", "").split())
    ran_phase_ok = all(ph["exit_status"] in (0, "skipped") for ph in phases.values())
    complete = (coverage["missing_batches"] == 0 and coverage["duplicates"] == 0 and
                all(p["batches_unowned"] == 0 for p in props) and
                ("props" not in expected or coverage["results_files"] >= run.get("shards", 1)))
    missing_phases = sorted(expected - set(phases))
    summary = {
        "date": run["date"], "seed": run["seed"], "shards": run.get("shards", 1),
        "seconds": seconds if seconds is not None else run.get("seconds", 0),
        "cases": cases, "failures": failures,
        "passed": failures == 0 and complete and ran_phase_ok and not missing_phases and not PROBLEMS and
                  all(p["status"] in ("passed", "expected-failure") for p in props),
        "problems": list(PROBLEMS),
        "complete": complete, "missing_phases": missing_phases,
        "max_success": run["max_success"],
        # The rerun command takes the night's own scale (run.json): a budgeted night's is smaller.
        "replay": (f"build-nightly/props --rc-seed={run['seed']} --rc-max-success={run['max_success']} --full"
                   if run["max_success"] else "(run.json holds no max_success: the night's scale is unknown)"),
        "engines": [{"engine": e, "settings": engine_settings.get(e, [])} for e in engines],
        "engines_note": engines_note,
        "properties": props, "counterexamples": counterexamples,
        "groups": group_counterexamples(counterexamples), "coverage": coverage,
        "phases": phases, "faults": faults, "fault_tests": tests,
    }
    summary["by_cause"] = by_cause(summary["groups"])
    summary["since"] = since_last(summary, earlier_summary(out, run["date"], since))
    summary["trend"] = earlier_nights(out, run["date"]) + [
        {"date": run["date"], "cases": cases, "failures": failures, "seconds": summary["seconds"],
         "passed": summary["passed"]}]
    return summary


# ---- the page ----------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222}
h1{font-size:22px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.passed{color:#176b1d;font-weight:bold} .expected-failure{color:#8a5a00} .failed,.incomplete{color:#b00020;font-weight:bold}
.verdict{font-size:18px;padding:8px 12px;display:inline-block;border-radius:4px}
.verdict.passed{background:#e3f4e4} .verdict.failed{background:#fbe3e6}
code,pre{background:#f5f5f5;padding:2px 4px;font-size:12px;white-space:pre-wrap;word-break:break-all}
.cx{border:1px solid #ddd;padding:8px 12px;margin:12px 0} .svg svg{max-width:100%;height:auto}
"""


def esc(x):
    return html.escape(str(x))


def trend_svg(trend):
    w, h, pad = 720, 160, 30
    if not trend:
        return ""
    top = max(1, max(n["cases"] for n in trend))
    step = (w - 2 * pad) / max(1, len(trend))
    bars = []
    for i, n in enumerate(trend):
        bh = (h - 2 * pad) * n["cases"] / top
        x = pad + i * step
        color = "#4caf50" if n["passed"] else "#e53935"
        bars.append(f'<rect x="{x:.1f}" y="{h - pad - bh:.1f}" width="{step * 0.8:.1f}" height="{bh:.1f}" '
                    f'fill="{color}"><title>{esc(n["date"])}: {n["cases"]} cases, {n["failures"]} failures</title></rect>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'role="img" aria-label="cases per night">'
            f'<text x="{pad}" y="16" font-size="12">cases per night (green: passed, red: failed); most: {top}</text>'
            + "".join(bars) +
            f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#888"/>'
            f'<text x="{pad}" y="{h - 10}" font-size="11">{esc(trend[0]["date"])}</text>'
            f'<text x="{w - pad}" y="{h - 10}" font-size="11" text-anchor="end">{esc(trend[-1]["date"])}</text></svg>')


def inline_svg(path):
    try:
        with open(path, encoding="utf-8") as f:
            svg = f.read()
    except OSError:
        return "<p>(heatmap missing)</p>"
    return re.sub(r"^<\?xml[^>]*\?>\s*", "", svg)


def since_html(since):
    if since["compared_with"] is None:
        return f'<h2>Since the last run</h2><p id="since">{esc(since["note"])}.</p>'
    rows = [("new failures", "new_failures"), ("fixed (failed then, pass now)", "fixed"),
            ("still failing", "still_failing"), ("new groups", "new_groups")]
    o = [f'<h2>Since the last run</h2><div id="since"><p>compared with {esc(since["compared_with"])}</p><table>']
    for label, key in rows:
        items = since[key]
        o.append(f'<tr><th>{label}</th><td class="since-{key.replace("_", "-")}">'
                 f'{"; ".join(esc(x) for x in items) if items else "none"}</td></tr>')
    o.append('</table></div>')
    return "".join(o)


def page(s):
    verdict = "passed" if s["passed"] else "failed"
    o = [f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>nightly {esc(s["date"])}: '
         f'{verdict}</title><style>{CSS}</style></head><body>',
         f'<h1>props nightly, {esc(s["date"])}</h1>',
         f'<p class="verdict {verdict}" id="verdict">{verdict.upper()}: {s["cases"]} cases, '
         f'{s["failures"]} failures, {s["shards"]} shards, {s["seconds"]} s</p>',
         f'<p>seed {s["seed"]}; rerun the properties with <code>{esc(s["replay"])}</code></p>']
    cov = s["coverage"]
    o.append(f'<p id="coverage">coverage: {cov["results_files"]} results files, {cov["duplicates"]} duplicate '
             f'batches, {cov["missing_batches"]} missing batches, {cov["torn_lines"]} torn lines'
             + ("" if not s["missing_phases"] else f'; phases that did not finish: {esc(", ".join(s["missing_phases"]))}')
             + '</p>')
    if s["problems"]:
        o.append('<p id="problems" class="failed">left out of the merge:</p><ul>'
                 + "".join(f"<li><code>{esc(m)}</code></li>" for m in s["problems"]) + '</ul>')
    o.append(since_html(s["since"]))
    o.append('<h2>Properties</h2><table id="properties"><tr><th>engine</th><th>id</th><th>property</th>'
             '<th>status</th><th>cases</th><th>failures</th><th>time (s, all shards)</th></tr>')
    for p in s["properties"]:
        # An expected failure's cell names the entry's reason (props/expected-failures.json).
        why = f' title="{esc(p["expected"])}"' if p.get("expected") else ""
        o.append(f'<tr id="prop-{esc(p["engine"])}-{esc(p["id"])}"><td>{esc(p["engine"])}</td><td>{esc(p["id"])}</td>'
                 f'<td>{esc(p["property"])}</td><td class="status {p["status"]}"{why}>{p["status"]}</td>'
                 f'<td class="num cases">{p["cases"]}</td><td class="num failures">{p["failures"]}</td>'
                 f'<td class="num seconds">{p["seconds"]:.2f}</td></tr>')
    o.append('</table>')
    if s["by_cause"]:
        o.append('<h2>Failures by cause</h2><table id="causes"><tr><th>cause</th><th>failures</th><th>properties</th>'
                 '<th>first parting (verdict, count)</th></tr>')
        for c in s["by_cause"]:
            o.append(f'<tr><td class="cause">{esc(c["cause"])}</td><td class="num count">{c["count"]}</td>'
                     f'<td class="properties">{esc(" ".join(c["properties"]))}</td>'
                     f'<td>{"<br>".join(esc(x) for x in c["sites"])}</td></tr>')
        o.append('</table>')
    if len(s["counterexamples"]) > 1:
        o.append(f'<h2>Groups ({len(s["groups"])})</h2><p>The counterexamples by first parting site, verdict '
                 'and cause (docs/verdicts.md), each with its smallest case.</p><table id="groups"><tr><th>engine</th>'
                 '<th>first parting</th><th>verdict</th><th>cause</th><th>count</th><th>properties</th>'
                 '<th>smallest case</th></tr>')
        for g in s["groups"]:
            sm = g["smallest"]
            o.append(f'<tr><td>{esc(g["engine"])}</td><td>{esc(g["site"])}</td><td>{esc(g["verdict"])}</td>'
                     f'<td>{esc(g["cause"])}</td><td class="num">{g["count"]}</td>'
                     f'<td>{esc(" ".join(g["properties"]))}</td><td>{esc(sm["property"])}, {sm["tokens"]} tokens: '
                     f'<code class="replay">{esc(sm["replay"])}</code></td></tr>')
        o.append('</table>')
    o.append(f'<h2>Counterexamples ({len(s["counterexamples"])})</h2>')
    if not s["counterexamples"]:
        o.append('<p id="no-counterexamples">None tonight.</p>')
    for i, c in enumerate(s["counterexamples"]):
        o.append(f'<div class="cx" id="cx-{i}" data-property="{esc(c["id"])}"><h3>{esc(c["engine"])} {esc(c["id"])}, '
                 f'shard {esc(c["shard"])}, batch {c["batch"]}</h3>'
                 f'<p class="headline">{esc(c["headline"])}{(" (" + esc(c["verdict"]) + ")") if c["verdict"] else ""}</p>'
                 f'<p>shrunk prompt: <code class="prompt">{esc(c["prompt"])}</code></p>'
                 f'<p>reproduce: <code class="reproduce">{esc(c["reproduce"])}</code></p>'
                 f'<p>replay: <code class="replay">{esc(c["replay"])}</code></p>'
                 + (f'<p><a class="report-html" href="{esc(c["report_html"])}">the full report</a> (the parting rows, '
                    f'each cell\'s components)</p>' if c.get("report_html") else "") +
                 f'<div class="svg">{inline_svg(c["heatmap_svg"]) if c["heatmap_svg"] else "(no heatmap)"}</div></div>')
    o.append('<h2>Engines and faults</h2><ul id="engines">')
    for e in s["engines"]:
        shown = " ".join(e["settings"]) or "default settings"
        o.append(f'<li>{esc(e["engine"])}: <code>{esc(shown)}</code></li>')
    if s["engines_note"]:
        o.append(f'<li>{esc(s["engines_note"])}</li>')
    o.append('</ul><p>The fault catalogue (docs/faults.md), each checked by the mutation suite:</p><table id="faults">'
             '<tr><th>fault</th><th>what it breaks</th></tr>')
    for f in s["faults"]:
        o.append(f'<tr><td>{esc(f["name"])}</td><td>{esc(f["description"])}</td></tr>')
    if not s["fault_tests"]:
        o.append('</table><p id="tests">The mutation suite and the nightly-only tests did not run tonight.</p><table>')
    else:
        o.append('</table><table id="tests"><tr><th>nightly test</th><th>status</th><th>time (s)</th></tr>')
    for t in s["fault_tests"]:
        o.append(f'<tr><td>{esc(t["name"])}</td><td class="{ "passed" if t["status"] == "passed" else "failed"}">'
                 f'{esc(t["status"])}</td><td class="num">{t["seconds"]:.1f}</td></tr>')
    o.append('</table><h2>Phases</h2><table id="phases"><tr><th>phase</th><th>exit status</th><th>time (s)</th><th>log</th></tr>')
    for name, ph in s["phases"].items():
        cls = "passed" if ph["exit_status"] in (0, "skipped") else "failed"
        o.append(f'<tr><td>{esc(name)}</td><td class="{cls}">{esc(ph["exit_status"])}</td>'
                 f'<td class="num">{ph["seconds"]}</td><td>{esc(ph["log"])}</td></tr>')
    o.append(f'</table><h2>The last {len(s["trend"])} nights</h2><div class="svg">{trend_svg(s["trend"])}</div>'
             '<table id="trend"><tr><th>date</th><th>cases</th><th>failures</th><th>time (s)</th><th>result</th></tr>')
    for n in reversed(s["trend"]):
        r = "passed" if n["passed"] else "failed"
        o.append(f'<tr><td>{esc(n["date"])}</td><td class="num">{n["cases"]}</td><td class="num">{n["failures"]}</td>'
                 f'<td class="num">{n["seconds"]}</td><td class="{r}">{r}</td></tr>')
    o.append('</table></body></html>\n')
    return "\n".join(o)


def main(argv):
    usage = "usage: nightly_report.py OUT [--seconds S] [--since SUMMARY.json]"
    if not argv or argv[0].startswith("--"):
        fail(usage)
    out, flags = argv[0], {}
    rest = argv[1:]
    while rest:
        if rest[0] not in ("--seconds", "--since") or len(rest) < 2 or rest[0] in flags:
            fail(f"{rest[0]}: unknown, repeated or without its value; {usage}")
        flags[rest[0]] = rest[1]
        rest = rest[2:]
    seconds = None
    if "--seconds" in flags:
        if not flags["--seconds"].isdigit():
            fail(f"--seconds '{flags['--seconds']}': expected a whole number")
        seconds = int(flags["--seconds"])
    if not os.path.isdir(out):
        fail(f"{out}: not a folder")
    s = summarize(out, seconds, flags.get("--since"))
    write_whole(os.path.join(out, "summary.json"), json.dumps(s, indent=2) + "\n")
    write_whole(os.path.join(out, "index.html"), page(s))
    print(f"nightly: {s['cases']} cases, {s['failures']} failures, "
          f"{'passed' if s['passed'] else 'FAILED'}; {out}/summary.json, {out}/index.html")
    since = s["since"]
    if since["compared_with"] is None:
        print(f"nightly: since the last run: {since['note']}")
    else:
        print(f"nightly: since {since['compared_with']}: " + "; ".join(
            f"{label} {' '.join(since[k]) if since[k] and k != 'new_groups' else len(since[k])}"
            for label, k in (("new failures", "new_failures"), ("fixed", "fixed"),
                             ("still failing", "still_failing"), ("new groups", "new_groups"))))
    return 0 if s["passed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
