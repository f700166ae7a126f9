"""The two places that lean on a library's private shape fail loudly when it changes.

The SFU replaces aiortc's private `RTCRtpReceiver._handle_rtp_packet`; the central
service overrides uvicorn's `Server.capture_signals`. Setting a renamed attribute
raises nothing, so each has a check that names the installed version. Here the
libraries' shape is changed under the check (the one place a test edits a third-party
class) and the real set-up paths -- a `CallRunner` starting, `serve_central` starting
-- must refuse.
"""

from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from aiortc import RTCRtpReceiver

from railgun_ref.drivers.central import (
    CentralConfig,
    CentralService,
    MailboxStore,
    check_uvicorn_signal_hook,
    serve_central,
)
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.drivers.voice_media import RTP_HOOK, CallRunner, MediaClock, check_aiortc_hooks
from railgun_ref.drivers.voice_signalling import NodeSignalling

from .conftest import identity

pytestmark = [pytest.mark.integration]


def test_the_installed_libraries_pass_their_checks() -> None:
    check_aiortc_hooks()
    check_uvicorn_signal_hook()


def test_a_missing_aiortc_hook_is_named_with_the_installed_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(RTCRtpReceiver, RTP_HOOK)
    with pytest.raises(RuntimeError, match=rf"aiortc {metadata.version('aiortc')}.*{RTP_HOOK}"):
        check_aiortc_hooks()


def test_an_aiortc_hook_of_another_shape_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def renamed_parameter(self: Any, packet: Any, arrival_time: int) -> None:
        pass

    monkeypatch.setattr(RTCRtpReceiver, RTP_HOOK, renamed_parameter)
    with pytest.raises(RuntimeError, match="arrival_time_ms"):
        check_aiortc_hooks()


@pytest.mark.anyio
async def test_a_call_does_not_start_without_the_aiortc_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(RTCRtpReceiver, RTP_HOOK)
    host = NodeHost(identity(90))
    async with anyio.create_task_group() as tg:
        await tg.start(host.run)
        runner = CallRunner(
            NodeSignalling(host, {host.node_id: host.address}),
            call_id=bytes(16),
            clock=MediaClock(anyio.current_time()),
        )
        with pytest.raises(RuntimeError, match=metadata.version("aiortc")):
            await tg.start(runner.run)
        tg.cancel_scope.cancel()


def test_uvicorn_without_the_signal_hook_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(uvicorn.Server, "capture_signals")
    with pytest.raises(RuntimeError, match=rf"uvicorn {uvicorn.__version__}"):
        check_uvicorn_signal_hook()


@pytest.mark.anyio
async def test_the_central_service_does_not_start_if_serve_skips_the_hook(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def serve(self: uvicorn.Server, sockets: Any = None) -> None:
        await self._serve(sockets)  # a uvicorn whose serve() installs handlers another way

    monkeypatch.setattr(uvicorn.Server, "serve", serve)
    store = MailboxStore(tmp_path / "central.sqlite3")
    try:
        service = CentralService(store, CentralConfig())
        async with anyio.create_task_group() as tg:
            with pytest.raises(RuntimeError, match=rf"uvicorn {uvicorn.__version__}"):
                await tg.start(partial(serve_central, service))
    finally:
        store.close()
