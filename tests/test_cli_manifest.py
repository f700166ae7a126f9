"""`railgun-ref manifest ...`: the full key-holder workflow, and one line + exit 2 on mistakes."""

import subprocess
import sys
from pathlib import Path

import pytest

from railgun_ref.bootstrap import manifest as m
from railgun_ref.cli import main

pytestmark = pytest.mark.timeout(60)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out.strip(), err.strip()


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    made = {}
    for name in ("r1", "r2", "r3", "m1", "m2", "n1"):
        path = tmp_path / f"{name}.key"
        code, out, _ = _run(["manifest", "keygen", str(path)], capsys)
        assert code == 0 and len(bytes.fromhex(out)) == 32
        assert path.stat().st_mode & 0o077 == 0
        made[name] = path
    return made


def _root_1(tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> Path:
    root = tmp_path / "root1.cbor"
    argv = ["manifest", "create", "root", "--out", str(root), "--root-threshold", "2"]
    argv += ["--root-key", str(keys["r1"]), "--root-key", str(keys["r2"])]
    argv += ["--manifest-key", str(keys["m1"]), "--manifest-key", str(keys["m2"])]
    argv += ["--manifest-threshold", "2"]
    assert _run(argv, capsys)[0] == 0
    # The threshold is collected one offline key holder at a time.
    for name in ("r1", "r2"):
        assert _run(["manifest", "sign", str(root), "--key", str(keys[name])], capsys)[0] == 0
    return root


def test_create_sign_verify_rotate(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = _root_1(tmp_path, keys, capsys)
    node_key = m.root_from_document(root.read_bytes()).manifest_keys[0].hex()
    doc = tmp_path / "manifest.cbor"
    argv = ["manifest", "create", "manifest", "--root", str(root), "--out", str(doc)]
    argv += ["--node", f"{node_key}=udp:127.0.0.1:7000,onion:{'a' * 56}.onion:7000"]
    argv += ["--source", "dns:_railgun._udp.example.org.", "--version", "3"]
    assert _run(argv, capsys)[0] == 0
    verify = ["manifest", "verify", str(doc), "--root", str(root)]
    code, _, err = _run(verify, capsys)
    assert code == 1 and "below_threshold" in err  # created unsigned
    assert _run(["manifest", "sign", str(doc), "--key", str(keys["m1"])], capsys)[0] == 0
    assert _run(["manifest", "sign", str(doc), "--key", str(keys["m2"])], capsys)[0] == 0
    code, out, _ = _run(verify, capsys)
    assert (code, out) == (0, "manifest 3 under root 1: 1 nodes, 1 sources")
    code, _, err = _run([*verify, "--last-version", "4"], capsys)
    assert code == 1 and "rollback" in err
    # Rotation: root 2 drops r1, adds r3; signed by old (r1, r2) and new (r2, r3) thresholds.
    root2 = tmp_path / "root2.cbor"
    argv = ["manifest", "rotate", "--root", str(root), "--out", str(root2)]
    argv += ["--root-key", str(keys["r2"]), "--root-key", str(keys["r3"]), "--root-threshold", "2"]
    argv += ["--manifest-key", str(keys["m1"])]
    assert _run(argv, capsys)[0] == 0
    sign = ["manifest", "sign", str(root2), "--key", str(keys["r2"]), "--key", str(keys["r3"])]
    assert _run(sign, capsys)[0] == 0
    code, _, err = _run(["manifest", "verify", str(root2), "--root", str(root)], capsys)
    assert code == 1 and "old root" in err  # only one old key (r2) so far
    assert _run(["manifest", "sign", str(root2), "--key", str(keys["r1"])], capsys)[0] == 0
    code, out, _ = _run(["manifest", "verify", str(root2), "--root", str(root)], capsys)
    assert (code, out) == (0, "root 2: accepted after root 1")
    # The old manifest may not be mixed with the new root.
    code, _, err = _run([*verify, "--chain", str(root2)], capsys)
    assert code == 1 and "mix_and_match" in err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["manifest", "keygen", "{r1}"], "exists"),
        (["manifest", "create", "root", "--out", "{out}"], "needs --root-key"),
        (
            ["manifest", "create", "root", "--out", "{out}", "--root-key", "abcd"],
            "needs --root-key and --manifest-key",
        ),
        (
            [
                "manifest",
                "create",
                "root",
                "--out",
                "{out}",
                "--root-key",
                "ab",
                "--manifest-key",
                "{m1}",
            ],
            "public key must be 32 bytes",
        ),
        (
            [
                "manifest",
                "create",
                "root",
                "--out",
                "{out}",
                "--root-key",
                "{r1}",
                "--root-threshold",
                "2",
                "--manifest-key",
                "{m1}",
            ],
            "threshold exceeds",
        ),
        (["manifest", "create", "root", "--out", "{out}", "--root-threshold", "0"], "at least 1"),
        (["manifest", "create", "manifest", "--out", "{out}"], "needs --root"),
        (
            ["manifest", "create", "manifest", "--out", "{out}", "--root", "{r1}", "--node", "x"],
            "expected KEY=",
        ),
        (["manifest", "sign", "{missing}", "--key", "{r1}"], "no such document"),
        (["manifest", "sign", "{r1}", "--key", "{missing}"], "no such key file"),
        (["manifest", "sign", "{r1}", "--key", "{r1}"], "not a signed document"),
        (["manifest", "verify", "{r1}", "--root", "{missing}"], "no such document"),
        (["manifest", "verify", "{r1}", "--root", "{r1}"], "trusted root is not usable"),
        (["manifest", "create", "root", "--out", "/nonexistent/dir/x"], "does not exist"),
    ],
)
def test_mistakes_end_in_one_line_and_exit_2(
    argv: list[str],
    fragment: str,
    tmp_path: Path,
    keys: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = {k: str(v) for k, v in keys.items()}
    names |= {"out": str(tmp_path / "out.cbor"), "missing": str(tmp_path / "missing")}
    code, _, err = _run([a.format(**names) for a in argv], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and fragment in err, err


def test_verify_runs_as_a_process(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = _root_1(tmp_path, keys, capsys)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "railgun_ref.cli",
            "manifest",
            "verify",
            str(root),
            "--root",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "railgun-ref: rejected: rollback: root 1 is not newer than 1"
