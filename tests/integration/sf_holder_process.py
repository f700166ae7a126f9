"""A storage holder as a process, for the kill -9 test (SF-2.6).

Reads hex STORE messages from stdin, one per line; for each, runs the holder
core, commits every `Persist` to SQLite, and only then prints the hex of each
answer on stdout. Usage: ``python sf_holder_process.py DB_PATH NOW``.
"""

import sys

from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.storeforward_store import SqliteHolderStore
from railgun_ref.storeforward.authorisers import VectorAuthoriser
from railgun_ref.storeforward.holder import Persist, Send

PEER = NodeId(bytes([7]) * 32)


def main(path: str, now: float) -> None:
    store = SqliteHolderStore(path)
    holder = store.restore_holder(NodeId(bytes([9]) * 32), authoriser=VectorAuthoriser(), now=now)
    print("ready", flush=True)
    for line in sys.stdin:
        holder.receive(bytes.fromhex(line.strip()), peer=PEER, now=now)
        while (action := holder.next_action()) is not None:
            if isinstance(action, Persist):
                store.apply(action)
            elif isinstance(action, Send):
                print(action.data.hex(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
