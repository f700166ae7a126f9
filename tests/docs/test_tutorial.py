"""The tutorial's first script runs as printed against a real central-service process."""

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", TUTORIAL.read_text(), flags=re.DOTALL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def central(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "railgun_ref.cli", "central"),
            *("--host", "127.0.0.1", "--port", str(port), "--db", str(tmp_path / "c.sqlite3")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("railgun-ref central listening")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_two_clients_chat_over_the_central_service(tmp_path: Path, central: str) -> None:
    chat = _python_blocks()[0]
    assert 'CENTRAL = "http://127.0.0.1:8080"' in chat
    script = tmp_path / "chat.py"
    script.write_text(chat.replace("http://127.0.0.1:8080", central))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["bob is now connected-aws", "hello bob - via central"]
    assert (tmp_path / "alice" / "identity.key").is_file()
