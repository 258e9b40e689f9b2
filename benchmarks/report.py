"""Tables for humans, JSON for machines, and the targets of the issue checked against both.

The targets are stated for 100,000 sockets; they are checked against the largest lab of the run,
and the summary says how many sockets that was, so a smaller run is never passed off as the real
one.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness import find_gnu_time

MB = 1024.0  # KiB per MiB
FULL_SCALE = 100_000  # sockets (or rows) the targets are stated for


@dataclass(frozen=True)
class Target:
    label: str
    limit: float
    unit: str  # "x" (ratio), "ms", "MB", "%"

    def verdict(self, value: float | None) -> str:
        if value is None:
            return "n/a"
        return "PASS" if value <= self.limit else "FAIL"


TARGETS = {
    "sample": Target("(a) sample <= 0.3x ss -tanpi", 0.3, "x"),
    "dump": Target("(b) dump faster than ss -tanpi", 1.0, "x"),
    "ui": Target("(c) one refresh on the UI thread <= 60 ms", 60.0, "ms"),
    "keys": Target("(d) key press to repaint <= 50 ms", 50.0, "ms"),
    "rss": Target("(e) peak RSS <= 200 MB", 200.0, "MB"),
    "cpu": Target("live app, 20,000 sockets: CPU <= 5%", 5.0, "%"),
    "idle": Target("live app, idle machine: CPU <= 1%", 1.0, "%"),
}


def machine_info() -> dict[str, Any]:
    ss = subprocess.run(["ss", "-V"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "ss": ss,
        "gnu_time": find_gnu_time(),
        "loadavg_start": os.getloadavg(),
    }


def print_sides(sides: dict[str, dict[str, Any]], width: int = 26) -> None:
    """The wall and CPU medians of each side (a harness Side's ``to_json``), one line each."""
    print(f"{'side':<{width}}{'wall median':>14}{'cpu median':>14}  what")
    for name, side in sides.items():
        cpu = side["cpu_median_s"]
        cpu_text = "-" if cpu is None else f"{cpu * 1000:9.2f} ms"
        wall = f"{side['wall_median_s'] * 1000:9.2f} ms"
        print(f"{name:<{width}}{wall:>14}{cpu_text:>14}  {side['label']}")


def write_results(
    path: str | None, machine: dict[str, Any], config: dict[str, Any], result: object
) -> None:
    """Close the machine's record (load average at the end) and, with ``--json``, write the
    whole run: machine, configuration and every measurement."""
    machine["loadavg_end"] = os.getloadavg()
    if path:
        with open(path, "w") as out:
            json.dump({"machine": machine, "config": config, "result": result}, out, indent=1)
        print(f"# wrote {path}", file=sys.stderr, flush=True)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:9.1f} ms"


def _mb(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / MB:6.1f} MB"


@dataclass
class Report:
    machine: dict[str, Any]
    config: dict[str, Any]
    missing: dict[str, str]
    labs: list[dict[str, Any]] = field(default_factory=list)
    ui: dict[str, Any] | None = None
    cpu: dict[str, Any] | None = None
    errors: dict[str, str] = field(default_factory=dict)  # part -> why it failed this run
    elapsed_s: float = 0.0

    # -- per lab -------------------------------------------------------------------------------

    def add_lab(self, lab: dict[str, Any]) -> None:
        self.labs.append(lab)
        print(
            f"\n== {lab['pairs']:,} pairs: {lab['sockets']:,} sockets, "
            f"{lab['processes']} owner processes, lab built in {lab['setup_s']:.1f} s =="
        )
        checks = lab.get("checks")
        if checks:
            seen = " · ".join(
                f"{name} {value[1]:,}/{value[0]:,}"
                for name, value in checks.items()
                if isinstance(value, tuple)
            )
            flag = "" if checks["ok"] else "   <-- MISMATCH"
            print(f"  ESTABLISHED listed with owner / listed: {seen}{flag}")
        if "sides" in lab:
            print(f"  {'side':<24}{'median wall':>14}{'cpu':>14}{'peak RSS':>11}   runs as")
            for name, side in lab["sides"].items():
                spent = [g for g in side.get("gc_s", []) if g is not None]
                note = f" (GC in runs: {', '.join(f'{g * 1000:.0f}' for g in spent)} ms)"
                print(
                    f"  {name:<24}{_ms(side['wall_median_s']):>14}{_ms(side['cpu_median_s']):>14}"
                    f"{_mb(side['peak_rss_kib']):>11}   {side['label']}"
                    + (note if spent and max(spent) >= 0.005 else "")
                )
            print(f"  {'median of per-round ratios (wall)':<44}{'value':>8}")
            for name, value in lab["ratios"].items():
                print(f"  {name:<44}{value:>7.3f}x")
        for part, error in lab.get("errors", {}).items():
            print(f"  {part} FAILED: {error}")
        if "live" in lab:
            live = lab["live"]
            print(
                f"  live app (tmux 120x40, 1 s): peak RSS {_mb(live['peak_rss_kib'])}, "
                f"CPU {live['cpu_percent']:.1f}% (+ tmux {live['tmux_cpu_percent']:.1f}%), "
                f"first screen after {live['ready_s']:.1f} s"
            )

    # -- ui and cpu ----------------------------------------------------------------------------

    def print_ui(self) -> None:
        ui = self.ui or {}
        print(f"\n== UI, real app headless 120x40, {ui.get('rows', 0):,} rows ==")
        load = ui.get("load") or {}
        if load:
            print(f"  first load: worker {_ms(load['worker_s'])}, UI busy {_ms(load['busy_s'])}")
        if ui.get("refresh_busy_s"):
            print(
                "  one refresh (all counters change, 1% rows in, 1% out): "
                f"UI busy {_ms(statistics.median(ui['refresh_busy_s']))} "
                f"(runs {', '.join(f'{s * 1000:.0f}' for s in ui['refresh_busy_s'])} ms), "
                f"worker thread {_ms(statistics.median(ui['worker_s']))}"
            )
            for name, runs in ui.get("parts_s", {}).items():
                print(f"    of which {name:<32}{_ms(statistics.median(runs))}")
        if ui.get("keys"):
            print(f"  {'key':<10}{'to repaint':>14}{'UI busy':>14}   (medians)")
            for key, runs in ui["keys"].items():
                if runs["latency_s"]:
                    latency = statistics.median(runs["latency_s"])
                    busy = statistics.median(runs["busy_s"])
                    print(f"  {key:<10}{_ms(latency):>14}{_ms(busy):>14}")
            if ui.get("missed"):
                print(f"  no repaint seen after: {ui['missed']}")

    def print_cpu(self) -> None:
        cpu = self.cpu or {}
        print("\n== live app CPU (tmux 120x40, --interval 1) ==")
        for name, run in cpu.items():
            where = f"{run['sockets']:,} sockets" if "sockets" in run else "host, no lab"
            print(
                f"  {name:<5} {where:<18} CPU {run['cpu_percent']:5.1f}% of one core "
                f"(+ tmux {run['tmux_cpu_percent']:.1f}%) over {run['seconds']:.0f} s, "
                f"peak RSS {_mb(run['peak_rss_kib'])}"
            )

    # -- targets -------------------------------------------------------------------------------

    def target_values(self) -> dict[str, tuple[float | None, str]]:
        """target name -> (value in the target's unit, where it was measured)."""
        out: dict[str, tuple[float | None, str]] = {}
        timed = [lab for lab in self.labs if "ratios" in lab]
        if timed:
            big = max(timed, key=lambda lab: lab["pairs"])
            where = f"{big['sockets']:,} sockets"
            ratios = big["ratios"]
            if "(a) sample / ss -tanpi" in ratios:
                out["sample"] = (ratios["(a) sample / ss -tanpi"], where)
            if "(b) dump / ss -tanpi" in ratios:
                out["dump"] = (ratios["(b) dump / ss -tanpi"], where)
        ui = self.ui or {}
        if ui.get("refresh_busy_s"):
            out["ui"] = (1000 * statistics.median(ui["refresh_busy_s"]), f"{ui['rows']:,} rows")
        medians = {
            key: statistics.median(runs["latency_s"])
            for key, runs in ui.get("keys", {}).items()
            if runs["latency_s"]
        }
        if medians:
            worst = max(medians, key=medians.__getitem__)
            out["keys"] = (1000 * medians[worst], f"worst key '{worst}', {ui['rows']:,} rows")
        rss = self._rss()
        if rss:
            out["rss"] = rss
        if self.cpu:
            lab = self.cpu["lab"]
            out["cpu"] = (lab["cpu_percent"], f"{lab['sockets']:,} sockets")
            out["idle"] = (self.cpu["idle"]["cpu_percent"], "host")
        return out

    def _rss(self) -> tuple[float, str] | None:
        lives = [lab for lab in self.labs if "live" in lab]
        if lives:
            big = max(lives, key=lambda lab: lab["pairs"])
            return big["live"]["peak_rss_kib"] / MB, f"live app, {big['sockets']:,} sockets"
        dumps = [lab for lab in self.labs if "netdash dump" in lab.get("sides", {})]
        if dumps:
            big = max(dumps, key=lambda lab: lab["pairs"])
            peak = big["sides"]["netdash dump"]["peak_rss_kib"]
            if peak is not None:
                return peak / MB, f"dump process, {big['sockets']:,} sockets"
        return None

    def below_scale(self, name: str) -> bool:
        """True when target ``name`` was measured on fewer sockets/rows than it is stated for."""
        if name in ("sample", "dump", "rss"):
            labs = [lab["sockets"] for lab in self.labs]
            return bool(labs) and max(labs) < FULL_SCALE
        if name in ("ui", "keys"):
            return bool(self.ui) and self.ui["rows"] < FULL_SCALE  # type: ignore[index]
        return False

    def finish(self, elapsed: float) -> None:
        self.elapsed_s = elapsed
        self.machine["loadavg_end"] = os.getloadavg()
        print("\n== targets (stated for 100,000 sockets / rows) ==")
        values = self.target_values()
        for name, target in TARGETS.items():
            if name in values:
                value, where = values[name]
                shown = f"{value:.3f}x" if target.unit == "x" else f"{value:.1f} {target.unit}"
                verdict = target.verdict(value) + ("*" if self.below_scale(name) else "")
                print(f"  {target.label:<44}{shown:>12}  {verdict:<5} {where}")
            else:
                part = "cpu" if name == "idle" else name
                selected = part in self.config.get("parts", ())
                why = self.errors.get(part) or self.missing.get(part)
                why = why or ("no result" if selected else "not selected (--part)")
                why = why if len(why) < 90 else why[:87] + "..."
                print(f"  {target.label:<44}{'-':>12}  {'':<5} {why}")
        load = " / ".join(f"{a:.1f}-{b:.1f}" for a, b in zip(
            self.machine["loadavg_start"], self.machine["loadavg_end"], strict=True
        ))  # fmt: skip
        if any(self.below_scale(name) for name in values):
            print(f"  * measured below {FULL_SCALE:,}: indicative only")
        print(f"  ({elapsed:.0f} s in all; load average 1/5/15 min from-to: {load})")

    def to_json(self) -> dict[str, Any]:
        values = self.target_values()
        return {
            "machine": self.machine,
            "config": {k: v for k, v in self.config.items() if not k.endswith("_list")},
            "not_available": self.missing,
            "labs": self.labs,
            "ui": self.ui,
            "cpu": self.cpu,
            "errors": self.errors,
            "targets": {
                name: {
                    "label": target.label,
                    "limit": target.limit,
                    "unit": target.unit,
                    "value": values.get(name, (None, ""))[0],
                    "where": values.get(name, (None, ""))[1],
                    "verdict": target.verdict(values.get(name, (None, ""))[0]),
                    "below_scale": self.below_scale(name),
                }
                for name, target in TARGETS.items()
            },
            "elapsed_s": self.elapsed_s,
        }
