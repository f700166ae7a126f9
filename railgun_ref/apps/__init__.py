"""Applications built on the integration API (`railgun_ref.client`).

`chat` is ``railgun-ref chat`` (one member of a chat, line by line on a
terminal or a pipe), `demo` is ``railgun-ref demo`` (a messenger surviving a
takedown, live on localhost), `demo_report` turns its events into tables, charts and an HTML page
(the ``lab`` extra; `inline_charts` draws them so the page needs no network),
and `sim_demo` is ``railgun-ref sim`` (a ping workload on
simulated nodes). Applications sit above `railgun_ref.client` and the drivers; nothing
below them imports them (tests/test_sans_io.py keeps that rule). The modules
are not imported here: the demo pulls in the whole client stack.
"""

__all__ = ["chat", "demo", "demo_report", "inline_charts", "sim_demo"]
