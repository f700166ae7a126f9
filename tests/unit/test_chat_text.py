"""`railgun-ref chat` without a network: invitations as one line, keys, safe text, the
lines each transport event becomes, the local store, stdin split into lines, and the
command line's one-line refusals."""

import os
from pathlib import Path

import pytest

from railgun_ref.apps.chat import (
    INVITATION_PREFIX,
    ChatError,
    ChatStore,
    ChatView,
    _read_lines,
    decode_invitation,
    encode_invitation,
    parse_key,
    printable,
)
from railgun_ref.cli import main
from railgun_ref.client import (
    Failure,
    InvitationExpired,
    MembersChange,
    MessageAccepted,
    MessageAcked,
    MessageReceived,
    PathChange,
    ReachChange,
    RoomMembershipChanged,
    StateChange,
    TransportEvent,
    TransportState,
)
from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.transport import FailureKind
from railgun_ref.transport.state import Reach

ME = NodeId(bytes.fromhex("aa" * 32))
BOB = NodeId(bytes.fromhex("b0b0" + "11" * 30))
CAROL = NodeId(bytes.fromhex("ca" * 32))
ROOM = bytes(32)


def _view(*, verbose: bool = False) -> ChatView:
    return ChatView(me=ME, room_label=lambda _: "lobby", nicknames={BOB: "bob"}, verbose=verbose)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 700])
def test_an_invitation_survives_its_one_line_form(size: int) -> None:
    invitation = bytes(range(256)) * 3
    line = encode_invitation(invitation[:size])
    assert line.startswith(INVITATION_PREFIX) and "\n" not in line and "=" not in line
    assert decode_invitation(f"  {line}\n") == invitation[:size]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("hello", "starts with"),
        (INVITATION_PREFIX + "a", "damaged"),
        (INVITATION_PREFIX + "ab!d", "damaged"),
    ],
)
def test_a_line_that_is_no_invitation_is_a_chat_error(text: str, reason: str) -> None:
    with pytest.raises(ChatError, match=reason):
        decode_invitation(text)


def test_a_key_is_64_hex_digits() -> None:
    assert parse_key("ab" * 32) == bytes([0xAB]) * 32
    for text in ("ab" * 31, "zz" * 32, "", "ab" * 33):
        with pytest.raises(ChatError, match="64 hex digits"):
            parse_key(text)


def test_control_characters_are_never_printed() -> None:
    """A member cannot move the cursor or clear the screen of another member's terminal."""
    assert printable("hi\x1b[2J\r\nthere\x07") == "hi\ufffd[2J\ufffd\ufffdthere\ufffd"
    assert printable("façade ✓ 漢字") == "façade ✓ 漢字"


def _received(body: bytes, sender: NodeId = BOB, path: str = "p2p") -> MessageReceived:
    return MessageReceived(
        room_id=ROOM, message_id=b"m" * 16, sender=sender, body=body, sent_ms=0, path=path, at=0
    )


#: event -> the lines it prints without -v.
EVENTS: list[tuple[TransportEvent, list[str]]] = [
    (_received(b"hello"), ["[lobby] bob via p2p: hello"]),
    (_received(b"hi", sender=CAROL, path="central"), ["[lobby] cacacaca via central: hi"]),
    (_received(b"\xff\n"), ["[lobby] bob via p2p: \ufffd\ufffd"]),
    (
        StateChange(
            old=TransportState.CONNECTED_AWS,
            new=TransportState.CONNECTED_P2P,
            reason="failover",
            at=0,
        ),
        ["* state: connected-p2p (was connected-aws; failover)"],
    ),
    (PathChange(central=True, p2p=True, at=0), ["* path: central + p2p"]),
    (ReachChange(reach=Reach.NONE, reachable=0, members=0, at=0), []),
    (PathChange(central=False, p2p=False, at=0), ["* path: none"]),
    (
        ReachChange(reach=Reach.SOME, reachable=1, members=2, at=0),
        ["* p2p reach: some (1 of 2 members)"],
    ),
    (
        RoomMembershipChanged(
            room_id=ROOM,
            members=frozenset({ME, CAROL}),
            added=frozenset({CAROL}),
            removed=frozenset({BOB}),
            state="member",
            at=0,
        ),
        ["* lobby: cacacaca joined", "* lobby: bob left"],
    ),
    (
        RoomMembershipChanged(
            room_id=ROOM,
            members=frozenset({ME, BOB}),
            added=frozenset({ME, BOB}),
            removed=frozenset(),
            state="member",
            at=0,
        ),
        ["* lobby: you are a member, with 1 other(s)"],
    ),
    (
        RoomMembershipChanged(
            room_id=ROOM,
            members=frozenset({BOB}),
            added=frozenset(),
            removed=frozenset({ME}),
            state="removed",
            at=0,
        ),
        ["* lobby: you are no longer a member (removed)"],
    ),
    (
        InvitationExpired(room_id=ROOM, invitee=CAROL, at=0),
        ["* lobby: invitation for cacacaca expired"],
    ),
    (Failure(kind=FailureKind.ROOMS, detail="refused\x1b", at=0), ["! rooms: refused\ufffd"]),
    (Failure(kind=FailureKind.CENTRAL, detail="session ended", at=0), []),
    (MessageAccepted(room_id=ROOM, message_id=b"m" * 16, members=frozenset({BOB}), at=0), []),
    (MessageAcked(message_id=b"m" * 16, path="central", member=None, at=0), []),
    (MembersChange(room_id=ROOM, members=frozenset({BOB}), at=0), []),
]


@pytest.mark.parametrize(("event", "lines"), EVENTS)
def test_each_event_is_the_lines_the_user_reads(event: TransportEvent, lines: list[str]) -> None:
    assert _view().lines(event) == lines


def test_verbose_adds_progress_and_every_failure() -> None:
    view = _view(verbose=True)
    message_id = bytes.fromhex("0123456789") + bytes(11)
    accepted = MessageAccepted(room_id=ROOM, message_id=message_id, members=frozenset({BOB}), at=0)
    assert view.lines(accepted) == ["* queued 01234567 for 1 member(s)"]
    acked = MessageAcked(message_id=message_id, path="p2p", member=BOB, at=0)
    assert view.lines(acked) == ["* 01234567 acknowledged via p2p by bob"]
    found = MembersChange(room_id=ROOM, members=frozenset({BOB, CAROL}), at=0)
    assert view.lines(found) == ["* lobby: p2p addresses known for bob, cacacaca"]
    failed = Failure(kind=FailureKind.CENTRAL, detail="session ended", at=0)
    assert view.lines(failed) == ["! central: session ended"]


def test_the_store_keeps_one_member_per_nickname_and_the_current_room(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chat.sqlite3")
    store.set_nickname(BOB, "bob")
    store.set_nickname(CAROL, "bob")  # the name moves to carol
    store.set_nickname(CAROL, "carol")  # and carol has one name
    store.set_nickname(BOB, "bobby")
    store.set_current_room(ROOM)
    store.close()
    again = ChatStore(tmp_path / "chat.sqlite3")
    assert again.nicknames() == {BOB: "bobby", CAROL: "carol"}
    assert again.current_room() == ROOM
    again.set_current_room(None)
    assert again.current_room() is None
    again.close()
    assert (tmp_path / "chat.sqlite3").stat().st_mode & 0o777 == 0o600


def test_stdin_is_split_into_lines_whatever_the_chunks() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, "one\ntwo\r\nthrée ✓\n\nlast".encode())
    os.close(write_end)
    try:  # 3-byte reads cut lines and the 2- and 3-byte characters in two
        assert list(_read_lines(read_end, 3)) == ["one", "two\r", "thrée ✓", "", "last"]
    finally:
        os.close(read_end)


#: argv -> a fragment of the one line it must print.
OPTION_MISTAKES = [
    (["chat"], "--data-dir"),
    (["chat", "--data-dir", "d", "--central", "127.0.0.1:8080"], "expected http://HOST:PORT"),
    (["chat", "--data-dir", "d", "--central", "http://127.0.0.1"], "expected http://HOST:PORT"),
    (["chat", "--data-dir", "d", "--central", "http://127.0.0.1:99999"], "http://HOST:PORT"),
    (["chat", "--data-dir", "d", "--central", "https://127.0.0.1:80"], "http://HOST:PORT"),
    (["chat", "--data-dir", "d", "--central", "http://192.0.2.1:80"], "outside the networks"),
    (["chat", "--data-dir", "d", "--bootstrap", "127.0.0.1"], "expected HOST:PORT"),
    (["chat", "--data-dir", "d", "--port", "70000"], "a port is 0..65535"),
    (["chat", "--data-dir", "d", "--linger", "-1"], "must be >= 0"),
    (["chat", "--data-dir", "d", "--profile", "slow"], "invalid choice"),
]


@pytest.mark.parametrize(("argv", "fragment"), OPTION_MISTAKES, ids=str)
def test_chat_option_mistakes_are_one_line_and_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("railgun-ref chat: error: ") and fragment in line


def test_a_data_dir_that_is_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("not a directory")
    with pytest.raises(SystemExit) as exited:
        main(["chat", "--data-dir", str(a_file)])
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"{a_file} exists and is not a directory" in line
