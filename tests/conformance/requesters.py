"""Deliberately broken requesters for the requester-side runner: `railgun-ref node`, bent.

Run as ``python tests/conformance/requesters.py MODE node --bootstrap ... --lookup ...``:
the arguments after MODE go to ``railgun-ref`` unchanged, so each mutant offers
the control surface of REQ-1.1 and differs from the reference in one rule:

* ``alpha-6``: six queries of a lookup in flight instead of three (DHT-6.1);
* ``trusts-any-signer``: requests carry no expected peer, so an answer signed by
  another node than the one asked completes the query (RPC-1.3);
* ``never-pings-oldest``: a newcomer to a full bucket goes to the replacement
  cache without the check PING of the least recently seen contact (DHT-5.2).
"""

import sys
from typing import Any

from railgun_ref import cli
from railgun_ref.dht import routing
from railgun_ref.dht.service import DhtConfig
from railgun_ref.drivers import udp
from railgun_ref.node import Node, NodeConfig

#: mode -> the clause its fault breaks.
MUTANTS = {"alpha-6": "DHT-6.1", "trusts-any-signer": "RPC-1.3", "never-pings-oldest": "DHT-5.2"}


def _bend(mode: str) -> None:
    if mode == "alpha-6":
        udp.DEPLOYED_CONFIG = NodeConfig(dht=DhtConfig(room_proofs=True, alpha=6))
    elif mode == "trusts-any-signer":
        original = Node._request

        def _request(self: Node, *args: Any, **kwargs: Any) -> None:
            kwargs["expected_peer"] = None
            original(self, *args, **kwargs)

        Node._request = _request  # type: ignore[method-assign]
    elif mode == "never-pings-oldest":
        observe = routing.RoutingTable.observe

        def _observe(self: routing.RoutingTable, *args: Any, **kwargs: Any) -> Any:
            outcome, contact = observe(self, *args, **kwargs)
            if outcome is routing.Observed.CHECK_OLDEST:
                return routing.Observed.CACHED, None
            return outcome, contact

        routing.RoutingTable.observe = _observe  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown mode {mode!r}; one of {', '.join(MUTANTS)}")


if __name__ == "__main__":
    _bend(sys.argv[1])
    sys.argv = ["railgun-ref", *sys.argv[2:]]
    raise SystemExit(cli.main())
