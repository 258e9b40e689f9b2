"""The Firewall tab on real netfilter: an nft ruleset in a namespace of a veth lab, traffic
sent through it, read by the app's own readers."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from vethlab import ADDR_B, veth_lab

from conftest import needs_root, skip_unless_root
from netdash.netns import resolve_netns
from netdash.sources.conntrack import ConntrackReader
from netdash.sources.firewall import FirewallReader
from netdash.ui.app import NetdashApp, build_replay_app
from netdash.ui.panes.firewall import FirewallPane
from netdash.ui.panes.firewall_rows import INDEX

RECORDING = Path(__file__).parent / "fixtures" / "connections.recording.json"
RULESET = """
table inet ndfw {
    set web { type inet_service; elements = { 80, 443, 5201 } }
    chain input {
        type filter hook input priority 0; policy drop;
        ct state established,related counter accept
        iif "lo" accept
        udp dport 9999 counter drop comment "blocked"
        tcp dport @web counter accept
        udp dport 5353 counter accept
    }
}
"""


def screen_text(app: NetdashApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@needs_root
async def test_rules_counters_rates_port_filter_and_conntrack():
    skip_unless_root()
    with veth_lab() as lab:
        subprocess.run(["ip", "netns", "exec", lab.b, "nft", "-f", "-"], input=RULESET,
                       text=True, check=True)  # fmt: skip
        target = resolve_netns(lab.b)
        app = build_replay_app(RECORDING, autostart=False)
        app.firewall, app.conntrack = FirewallReader(netns=target), ConntrackReader(netns=target)
        from netdash.engine import Poller

        app.firewall_poller = Poller(
            "firewall", app._sample_firewall_in_thread, app._publish_firewall, 1.0
        )
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("escape", "5")
            pane = app.query_one(FirewallPane)
            app.sample_now()
            app.firewall_poller.run_once()
            await pilot.pause()
            # 50 datagrams to the blocked port, from namespace a.
            code = (
                "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                f"[s.sendto(b'x', ('{ADDR_B}', 9999)) for _ in range(50)]"
            )
            subprocess.run(["ip", "netns", "exec", lab.a, "python3", "-c", code], check=True)
            time.sleep(0.2)
            app.firewall_poller.run_once()
            await pilot.pause()
            rows = {row.data.text: row for row in pane.view if hasattr(row.data, "handle")}
            blocked = next(row for text, row in rows.items() if "9999" in text)
            assert blocked.data.packets == 50 and blocked.data.comment == "blocked"
            assert blocked.styles[INDEX["verdict"]] == "bold red"
            assert blocked.styles[INDEX["rule"]] == "bold yellow"  # moved in the last sample
            assert float(blocked.cells[INDEX["pps"]] or 0) > 0
            chain = next(row for row in pane.view if getattr(row.data, "policy", None) == "drop")
            assert chain.styles[0] == "bold red"
            assert "dropping" in screen_text(app)
            pane.set_filter_text("port:443")
            await pilot.pause()
            shown = [row.data.text for row in pane.view]
            assert shown == [next(text for text in rows if "@web" in text)]  # through the set
            await pilot.press("c")
            await pilot.pause()
            assert "by state" in screen_text(app) and "conntrack" in screen_text(app)


async def test_without_sources_the_tab_says_so():
    app = build_replay_app(RECORDING, autostart=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("escape", "5")
        await pilot.pause()
        assert "rules are read live only, not replayed" in screen_text(app)
