"""All IO lives here: real sockets (anyio), the discrete-event simulator, files."""
