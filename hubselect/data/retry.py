"""Retries of transient Hub failures: bounded, jittered exponential backoff that honours ``Retry-After``.

:func:`retry_call` is the generic loop: it calls an attempt until it returns, sleeping between
tries, and gives up with one :class:`RetriesExhausted` line (how many tries, how long, the last
reason) once the next wait would pass the time budget. It keeps no state between calls, so any
number of threads may use it at once.

:func:`install_hub_retries` puts it under every HTTP request ``huggingface_hub`` and ``datasets``
send (info, tree, resolve, paths-info, search, and the ranged reads of a streamed split): it
gives ``huggingface_hub`` (through its public ``set_client_factory``) an ``httpx2.Client`` whose
``send`` retries HTTP 429, 500, 502, 503, 504 and dropped or reset connections. A refused
connection is not retried (the Hub is down or the address is wrong: that fails at once).
``huggingface_hub``'s own retry loop then never sees a transient answer, so it neither retries
on top of ours nor logs its warnings; ours log at INFO (hidden under ``--quiet``).

The budget (default 60 s) and the first wait (default 1 s) come from
``HUBSELECT_HUB_RETRY_BUDGET_S`` and ``HUBSELECT_HUB_RETRY_BASE_S``, read on every call, or from
a :class:`RetryPolicy` passed to :func:`retry_call`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from hubselect.core.errors import HubselectError

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses that are retried."""

BUDGET_ENV = "HUBSELECT_HUB_RETRY_BUDGET_S"
BASE_ENV = "HUBSELECT_HUB_RETRY_BASE_S"

_NO_RETRY = contextvars.ContextVar("hubselect_no_retry", default=False)
_INSTALL_LOCK = threading.Lock()


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep retrying, and how long to wait between tries.

    Attributes:
        budget_s: no try starts later than this many seconds after the first one.
        base_s: the wait after the first failed try; it doubles after each one.
        cap_s: the longest wait between two tries (before ``Retry-After``).
    """

    budget_s: float = 60.0
    base_s: float = 1.0
    cap_s: float = 16.0

    @classmethod
    def from_env(cls) -> "RetryPolicy":
        """The default policy, with ``HUBSELECT_HUB_RETRY_BUDGET_S`` / ``..._BASE_S`` when set."""
        return cls(budget_s=_seconds(BUDGET_ENV, cls.budget_s), base_s=_seconds(BASE_ENV, cls.base_s))

    def backoff(self, tries: int) -> float:
        """The wait after ``tries`` failed tries: half of the doubled ceiling fixed, half random."""
        ceiling = min(self.cap_s, self.base_s * 2 ** (tries - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise HubselectError(f"{name}={text!r} is not a number of seconds >= 0: fix or unset it")
    return value


class Transient(Exception):
    """Raised by an attempt to ask :func:`retry_call` for another try.

    Args:
        reason: what went wrong, for the log and the final message (``HTTP 503``).
        retry_after: seconds the server asked to wait (``Retry-After``), if it did.
    """

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


class RetriesExhausted(HubselectError):
    """Every try failed within the budget: one line with the count, the time and the last reason."""

    def __init__(self, what: str, tries: int, seconds: float, reason: str, advice: str):
        self.what, self.tries, self.seconds, self.reason = what, tries, seconds, reason
        super().__init__(f"{what}: gave up after {plural(tries)} in {seconds:.0f} s (last: {reason}): {advice}")


def plural(tries: int) -> str:
    """``1 try`` or ``N tries``."""
    return f"{tries} {'try' if tries == 1 else 'tries'}"


def retry_call(attempt: Callable[[], T], *, what: str, advice: str, policy: RetryPolicy | None = None,
               sleep: Callable[[float], Any] = time.sleep) -> T:
    """Call ``attempt()`` until it returns; it raises :class:`Transient` to be tried again.

    Waits :meth:`RetryPolicy.backoff` between tries, or longer when the failure carries a
    ``retry_after``. Gives up when the next wait would end past the budget (a ``Retry-After``
    beyond it gives up at once). Thread-safe: all state is local to the call.

    Args:
        attempt: one try; returns the result or raises :class:`Transient` (other errors propagate).
        what: what is being tried, the start of the final message and of each log line.
        advice: the fix the final message ends with.
        policy: budget and waits; default :meth:`RetryPolicy.from_env`.
        sleep: how to wait (``time.sleep``).

    Raises:
        RetriesExhausted: the budget ran out; chained to the last failure.
    """
    policy = policy or RetryPolicy.from_env()
    started, tries = time.monotonic(), 0
    while True:
        tries += 1
        try:
            return attempt()
        except Transient as failure:
            elapsed = time.monotonic() - started
            wait = max(policy.backoff(tries), failure.retry_after or 0.0)
            if elapsed + wait > policy.budget_s:
                raise RetriesExhausted(what, tries, elapsed, failure.reason, advice) from failure
            logger.info("%s: %s; try %d in %.1f s", what, failure.reason, tries + 1, wait)
            sleep(wait)


@contextlib.contextmanager
def no_retries() -> Iterator[None]:
    """Within this block (in this thread or task), Hub requests are sent once (e.g. a probe)."""
    token = _NO_RETRY.set(True)
    try:
        yield
    finally:
        _NO_RETRY.reset(token)


# ---------------------------------------------------------------------------------------------
# huggingface_hub's HTTP client
# ---------------------------------------------------------------------------------------------


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header given in seconds (an HTTP date is not used: None)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _retrying_client_class() -> type:
    import httpx2

    class RetryingClient(httpx2.Client):
        """An ``httpx2.Client`` whose every request goes through :func:`retry_call`."""

        def send(self, request: Any, **kwargs: Any) -> Any:
            if _NO_RETRY.get():
                return super().send(request, **kwargs)
            request.read()  # keep the body, to send it again
            send = super().send

            def attempt() -> Any:
                try:
                    response = send(request, **kwargs)
                except (httpx2.ReadError, httpx2.WriteError, httpx2.RemoteProtocolError) as err:
                    raise Transient(f"dropped the connection ({type(err).__name__})") from err
                if response.status_code not in TRANSIENT_STATUSES:
                    return response
                response.close()
                after = retry_after_seconds(response.headers.get("Retry-After"))
                asked = "" if after is None else f" (Retry-After {after:g} s)"
                raise Transient(f"HTTP {response.status_code}{asked}", after)

            url = request.url
            return retry_call(attempt, what=f"the Hub at {url.scheme}://{url.netloc.decode()} "
                                            f"({request.method} {url.path})",
                              advice="retry later, or pass a local folder/file path")

    return RetryingClient


def install_hub_retries() -> None:
    """Make ``huggingface_hub`` (and so ``datasets``) send every request with retries; idempotent.

    The new client keeps the default client's event hooks (offline check, request ids), redirect
    and timeout settings, read through ``httpx2.Client``'s public attributes. Installing it closes
    the client in use (``set_client_factory`` does), so a caller about to start threads that send
    Hub requests installs it first (the fetch step does); once installed, every thread shares the
    one thread-safe client, and each request's retries are its own.
    """
    from huggingface_hub import get_session, set_client_factory

    if getattr(get_session(), "hubselect_retries", False):
        return
    with _INSTALL_LOCK:
        template = get_session()
        if getattr(template, "hubselect_retries", False):
            return
        cls = _retrying_client_class()
        hooks, follow, timeout = template.event_hooks, template.follow_redirects, template.timeout

        def factory() -> Any:
            client = cls(event_hooks=hooks, follow_redirects=follow, timeout=timeout)
            client.hubselect_retries = True
            return client

        set_client_factory(factory)
