"""The network lab: real hosts, kernel NATs and firewalls in Linux network namespaces.

A driver-level package (it runs ``ip`` and ``nft`` and starts processes), so it
needs root. `topology` turns a small description into an address plan (pure
data), `nft` writes the nftables rulesets (pure text), `lab.NetLab` builds and
tears down the namespaces and starts `railgun-ref` processes inside them.

Nothing in a lab is connected to the host's own network namespace: the
"internet" is a namespace too, so no packet can leave the machine.
"""

#: The submodules, imported on use only.
__all__ = ["agent", "cli", "lab", "nft", "topology"]
