"""The tuner's tracking notices: the usual "still uploading after exit" is said only when the
store does not answer (then the rest waits for `autotune sync`)."""

from __future__ import annotations

import socket

import pytest

from autotune.daemon.session import _answers, _notices

BACKGROUND = "run local-1 is still uploading in the background; ... for `autotune sync`"


def test_a_listening_server_answers_and_a_closed_port_does_not() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        assert _answers(f"http://127.0.0.1:{port}")
    assert not _answers(f"http://127.0.0.1:{port}")  # closed now: refused
    assert _answers("sqlite:////tmp/nowhere/mlflow.db")  # a local store always answers


def test_the_background_notice_is_said_only_when_the_store_is_down(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        up = _notices(f"http://127.0.0.1:{srv.getsockname()[1]}")
        up(BACKGROUND)
        assert capsys.readouterr().err == ""
        up("tracking store x: its last upload did not finish in time")
        assert "did not finish" in capsys.readouterr().err
        closed = srv.getsockname()[1]
    down = _notices(f"http://127.0.0.1:{closed}")
    down(BACKGROUND)
    assert "`autotune sync`" in capsys.readouterr().err
