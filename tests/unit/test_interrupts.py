"""Orderly shutdown: the first SIGINT/SIGTERM/SIGHUP becomes Interrupted, later ones wait for the clean-up."""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Iterator

import pytest

from harness.interrupts import SHUTDOWN_SIGNALS, Interrupted, graceful_shutdown


@pytest.fixture(autouse=True)
def _default_dispositions() -> Iterator[None]:
    """Each shutdown signal at its default, as in a terminal's shell: graceful_shutdown leaves a signal the process
    was started ignoring alone (nohup; SIGINT of a background job), so a test run started so would test nothing."""
    default = {signal.SIGINT: signal.default_int_handler}  # Python's own, unless started ignoring SIGINT (`cmd &`)
    before = {sig: signal.signal(sig, default.get(sig, signal.SIG_DFL)) for sig in SHUTDOWN_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


@pytest.mark.parametrize("sig", SHUTDOWN_SIGNALS)
def test_each_shutdown_signal_unwinds_with_its_exit_code(sig: signal.Signals) -> None:
    with pytest.raises(Interrupted) as caught, graceful_shutdown():
        os.kill(os.getpid(), sig)
        signal.sigtimedwait([], 0)  # give the handler its chance (it runs between bytecodes)
    assert caught.value.signum == sig and caught.value.exit_code == 128 + sig
    assert caught.value.signal_name == sig.name
    assert isinstance(caught.value, KeyboardInterrupt)  # every Ctrl-C path handles it


def test_a_second_signal_during_clean_up_does_not_cut_it_short() -> None:
    cleaned = []
    with pytest.raises(Interrupted) as caught, graceful_shutdown():
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            signal.sigtimedwait([], 0)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # e.g. the SIGTERM that follows a dropped SSH connection
            signal.sigtimedwait([], 0)
            cleaned.append(True)
    assert cleaned == [True] and caught.value.signum == signal.SIGHUP


def test_previous_handlers_come_back_and_the_exception_pickles() -> None:
    before = {sig: signal.getsignal(sig) for sig in SHUTDOWN_SIGNALS}
    with graceful_shutdown():
        assert all(signal.getsignal(sig) is not before[sig] for sig in SHUTDOWN_SIGNALS)
    assert {sig: signal.getsignal(sig) for sig in SHUTDOWN_SIGNALS} == before
    again = pickle.loads(pickle.dumps(Interrupted(signal.SIGHUP)))
    assert isinstance(again, Interrupted) and again.exit_code == 129


def test_a_signal_the_process_ignores_stays_ignored() -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with graceful_shutdown() as state:
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)  # the terminal closes: the batch goes on
            signal.sigtimedwait([], 0)
        assert state.signum is None
    finally:
        signal.signal(signal.SIGHUP, previous)
