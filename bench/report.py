"""The Markdown summary of a benchmark run, with each goal met or missed."""

from __future__ import annotations

from typing import Any

REPORT_GOALS = (("SQLite", "sqlite_limits_on", 0.30), ("PostgreSQL", "postgres_limits_on", 0.12))
INGEST_GOALS = (("SQLite", "sqlite_ingest", 100_000), ("PostgreSQL", "postgres_ingest", 30_000))
STATEMENT_GOALS = (("SQLite", "sqlite_statements", 60), ("PostgreSQL", "postgres_statements", 30))


def _verdict(met: bool, detail: str) -> str:
    return ("met" if met else "**missed**") + f" ({detail})"


def _cell(run: dict[str, Any], bare: dict[str, Any] | None) -> str:
    text = f"{run['requests_per_second']:,.0f} req/s"
    if bare:
        text += f" = {run['requests_per_second'] / bare['requests_per_second']:.2f} × bare"
    text += f", p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms"
    if "rss_mb" in run:
        text += f", {run['rss_mb']} MB"
    if run.get("non_2xx"):
        text += f", {run['non_2xx']} non-2xx"
    return text


def _load_table(results: dict[str, Any]) -> list[str]:
    bare = results.get("bare")
    rows = [
        ("bare ASGI app (uvicorn)", "bare"),
        ("report call, SQLite, limits enforced", "sqlite_limits_on"),
        ("report call, SQLite, limits off", "sqlite_limits_off"),
        ("report call, PostgreSQL, limits enforced", "postgres_limits_on"),
    ]
    lines = ["| measure | c=16 | c=64 |", "|---|---|---|"]
    for label, key in rows:
        if key in results:
            runs = results[key]
            cells = [
                _cell(runs[c], bare[c] if bare and key != "bare" else None) for c in ("c16", "c64")
            ]
            lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return lines


def _figures_table(results: dict[str, Any]) -> list[str]:
    lines = ["| measure | figure |", "|---|---|"]
    for label, key, _ in INGEST_GOALS:
        if key in results:
            run = results[key]
            lines.append(
                f"| ingestion through HTTP, {label}, 10,000-event batches, dedupe on |"
                f" {run['events_per_second']:,} events/s ({run['events']:,} events in"
                f" {run['seconds']} s; server {run['rss_mb']} MB) |"
            )
    for run in results.get("import", []):
        lines.append(
            f"| `voxmeter usage import`, {run['lines']:,} lines ({run['file_mb']} MB) |"
            f" {run['events_per_second']:,} events/s, importer peak {run['peak_rss_mb']} MB |"
        )
    if "volume" in results:
        v = results["volume"]
        lines.append(
            f"| report p50 with {v['small_events']:,} vs {v['large_events']:,} events |"
            f" {v['small_p50_ms']:.3f} ms vs {v['large_p50_ms']:.3f} ms (× {v['ratio']});"
            f" bulk fill {v['fill_events_per_second']:,} events/s |"
        )
    if "overview" in results:
        o = results["overview"]
        scale = f"{o['operations']:,} operations × {o['meters']} meters, {o['events']:,} events"
        lines.append(
            f"| console overview page, SQLite, {scale} | p50 {o['page']['p50_ms']} ms,"
            f" p99 {o['page']['p99_ms']} ms; {o['page_html_kb']:,} KB of HTML,"
            f" {o['page_transferred_kb']:,} KB transferred with its assets |"
        )
        lines.append(
            f"| admin API overview, SQLite, same data | p50 {o['api']['p50_ms']} ms,"
            f" p99 {o['api']['p99_ms']} ms, {o['api_kb']:,} KB |"
        )
    if "alerts_ingest" in results:
        a = results["alerts_ingest"]
        lines.append(
            f"| ingestion, SQLite, 0 vs {a['rules']} alert rules |"
            f" {a['without_rules']['events_per_second']:,} vs"
            f" {a['with_rules']['events_per_second']:,} events/s |"
        )
    if "alerts_delivery" in results:
        d = results["alerts_delivery"]
        lines.append(
            f"| alert delivery, crossing to receipt ({d['crossings']} crossings) |"
            f" p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms |"
        )
    if "ingest_reports" in results:
        r = results["ingest_reports"]
        alone, during, bodies = r["alone"], r["during"], r["bodies"]
        lines.append(
            f"| report p50 / p99 on SQLite, alone vs during {r['batches']} 10,000-event batches"
            f" ({r['ingest_seconds']} s) | {alone['p50_ms']} / {alone['p99_ms']} ms vs"
            f" {during['p50_ms']} / {during['p99_ms']} ms (max {during['max_ms']} ms) |"
        )
        lines.append(
            f"| server RSS, {bodies['clients']} parallel maximal bodies (SQLite) |"
            f" {bodies['idle_rss_mb']} MB idle, peak {bodies['peak_rss_mb']} MB;"
            f" answers {bodies['statuses']} |"
        )
    for label, key, _ in STATEMENT_GOALS:
        if key in results:
            run = results[key]
            lines.append(
                f"| month close, {label}: {run['statements']:,} statements"
                f" ({run['operations']:,} operations × {run['meters']} meters,"
                f" {run['events']:,} events) | {run['close_seconds']} s; reports meanwhile"
                f" {run['reports_during_per_second']:,}/s vs {run['reports_alone_per_second']:,}/s"
                f" alone |"
            )
    return lines


def _goals_table(results: dict[str, Any]) -> list[str]:
    lines = ["| goal | verdict |", "|---|---|"]
    bare = results.get("bare")
    if bare:
        for store, key, goal in REPORT_GOALS:
            if key not in results:
                continue
            ratio = min(
                results[key][c]["requests_per_second"] / bare[c]["requests_per_second"]
                for c in ("c16", "c64")
            )
            p99 = results[key]["c16"]["p99_ms"]
            verdict = _verdict(ratio >= goal, f"{ratio:.2f} ×")
            lines.append(f"| report ≥ {goal} × bare on {store} | {verdict} |")
            lines.append(
                f"| report p99 < 10 ms at c=16 on {store} | {_verdict(p99 < 10, f'{p99:.2f} ms')} |"
            )
        on = results["sqlite_limits_on"]["c16"]["requests_per_second"]
        off = results["sqlite_limits_off"]["c16"]["requests_per_second"]
        lines.append(
            f"| (cost of enforcement, SQLite c=16) | limits on serve {on / off:.2f} ×"
            " the rate of limits off |"
        )
        rss = max(
            run["rss_mb"]
            for key in ("sqlite_limits_on", "postgres_limits_on")
            if key in results
            for run in results[key].values()
        )
        lines.append(f"| server memory < 150 MB under load | {_verdict(rss < 150, f'{rss} MB')} |")
    if "volume" in results:
        ratio = results["volume"]["ratio"]
        verdict = _verdict(ratio <= 1.2, f"× {ratio}")
        lines.append(f"| report latency at 10^7 events ≤ 1.2 × at 10^3 | {verdict} |")
    for label, key, goal in INGEST_GOALS:
        if key in results:
            rate = results[key]["events_per_second"]
            verdict = _verdict(rate >= goal, f"{rate:,}/s")
            lines.append(f"| ingestion ≥ {goal:,} events/s on {label} | {verdict} |")
    if "overview" in results:
        o = results["overview"]
        p99 = max(o["page"]["p99_ms"], o["api"]["p99_ms"])
        lines.append(f"| overview p99 < 250 ms on SQLite | {_verdict(p99 < 250, f'{p99} ms')} |")
        weight = o["page_transferred_kb"]
        lines.append(
            f"| overview page < 400 KB transferred | {_verdict(weight < 400, f'{weight:,} KB')} |"
        )
    for label, key, goal in STATEMENT_GOALS:
        if key in results:
            run = results[key]
            seconds, ratio = run["close_seconds"], run["reports_ratio"]
            lines.append(
                f"| month close < {goal} s on {label} |"
                f" {_verdict(seconds < goal, f'{seconds} s')} |"
            )
            lines.append(
                f"| reports during the close ≥ 80 % of their rate on {label} |"
                f" {_verdict(ratio >= 0.8, f'{ratio * 100:.0f} %')} |"
            )
    if "alerts_ingest" in results:
        ratio = results["alerts_ingest"]["ratio"]
        lines.append(
            f"| ingestion with 100 rules ≥ 90 % of without |"
            f" {_verdict(ratio >= 0.9, f'{ratio * 100:.0f} %')} |"
        )
    if "ingest_reports" in results:
        p99 = results["ingest_reports"]["during"]["p99_ms"]
        peak = results["ingest_reports"]["bodies"]["peak_rss_mb"]
        lines.append(
            f"| report p99 < 10 ms during 10k-batch ingestion on SQLite |"
            f" {_verdict(p99 < 10, f'{p99} ms')} |"
        )
        lines.append(
            f"| server RSS < 200 MB under 20 parallel maximal bodies |"
            f" {_verdict(peak < 200, f'{peak} MB')} |"
        )
    if len(results.get("import", [])) == 2:
        small, large = results["import"]
        flat = large["peak_rss_mb"] <= 1.25 * small["peak_rss_mb"]
        detail = (
            f"{small['peak_rss_mb']} MB for {small['lines']:,} lines,"
            f" {large['peak_rss_mb']} MB for {large['lines']:,}"
        )
        lines.append(f"| import memory flat in file size | {_verdict(flat, detail)} |")
    return lines


def markdown(results: dict[str, Any]) -> str:
    head = (
        f"Benchmark of {results['date']} on {results['cores']} cores, Python {results['python']},"
        f" load by {results['load_generator']}{' (quick run)' if results['quick'] else ''}."
    )
    tables = [_load_table(results), _figures_table(results), _goals_table(results)]
    return "\n\n".join([head, *("\n".join(t) for t in tables)]) + "\n"
