"""All IO lives here: real sockets (anyio), the discrete-event simulator, files."""

#: The submodules, imported on use only (each pulls in its own dependencies).
__all__ = [
    "addresses",
    "capabilities",
    "central",
    "central_client",
    "churn",
    "dns_server",
    "fault_proxy",
    "keystore",
    "loop",
    "node_main",
    "outbox_store",
    "resolver",
    "sim",
    "sim_nat",
    "sim_transport",
    "sqlite",
    "sqlite_store",
    "stun_server",
    "transport",
    "turn_server",
    "udp",
    "udp_receive",
    "voice_media",
    "voice_signalling",
]
