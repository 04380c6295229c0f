"""The receiver as a relay in front of the operator's app (``GREEN_API_RECEIVER_FORWARD_URL``).

Placed as the instance's webhookUrl, it forwards every GREEN-API body unchanged to the app and answers GREEN-API
200 only once the app answered 2xx: otherwise a non-2xx, so GREEN-API keeps the notification at the head of its
queue and sends it again. The relay keeps no queue; GREEN-API's is the durable one. A notification of an account
that is known no longer to be on the instance is held back: answered 200 (GREEN-API drops it), counted, not
forwarded. The rule is ``domain.accounts.judge``; this module feeds it (what it knows per instance, GetSettings
checks) and carries out its verdict.

In the steady state it asks Prefect nothing per notification: an instance's credentials are read once (to ask
GetSettings), held-back counts go to Prefect in batches, and only a stateInstanceChanged or an account change
found by a check reaches the report service.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError

from domain.accounts import KnownAccount, Verdict, after_check, judge, needs_refresh, same_account
from domain.changes import account_of
from receiver.appclient import AppClient, AppUnreachable
from receiver.models import STATE_INSTANCE_CHANGED, GreenApiWebhook

logger = logging.getLogger("greenapi.receiver")

# A failed GetSettings (or no credentials) is logged once per instance per this many seconds.
WARN_EVERY_SECONDS = 60.0
# After a check that could not be made, the instance's notifications go on unchecked this long: a GREEN-API that
# does not answer must not slow every notification down to one GetSettings each.
RECHECK_AFTER_FAILURE_SECONDS = 10.0


@dataclass(frozen=True)
class Forwarded:
    """The app's answer: ``status`` when it answered, ``failure`` ("timeout", "unreachable") when it did not."""

    status: int | None = None
    failure: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def why_not(self) -> str:
        return f"the app answered HTTP {self.status}" if self.status is not None else f"the app did not answer ({self.failure})"


class Forwarder:
    """POSTs bodies to the app, unchanged; the token goes as ``Authorization: Bearer``; a keep-alive connection
    per instance (GREEN-API sends an instance's notifications one at a time)."""

    def __init__(self, url: str, token: SecretStr | None, timeout_seconds: float) -> None:
        self._client = AppClient(url, timeout_seconds)
        self._auth = [(b"Authorization", f"Bearer {token.get_secret_value()}".encode())] if token is not None else []
        self.host = urlsplit(url).netloc.rpartition("@")[2]  # what logs name: never the path, query or credentials

    async def forward(self, body: bytes, content_type: str | None, id_instance: int | None = None) -> Forwarded:
        headers = [(b"Content-Type", (content_type or "application/json").encode("latin-1", "replace")), *self._auth]
        try:
            return Forwarded(status=await self._client.post(body, headers, id_instance))
        except TimeoutError:
            return Forwarded(failure="timeout")
        except (AppUnreachable, OSError) as exc:
            return Forwarded(failure=f"unreachable: {type(exc).__name__}")

    async def close(self) -> None:
        await self._client.close()


class AccountChecker:
    """GetSettings on one instance, with the credentials of its greenapi-instance block (read once, on first need).

    ``credentials_of(id)`` returns the InstanceCredentials or None; ``open_client(credentials)`` a GREEN-API
    client (paced: GetSettings at most once a second per instance, GREEN-API's limit).
    """

    def __init__(self, credentials_of: Callable[[int], Awaitable[object | None]],
                 open_client: Callable[[object], object]) -> None:
        self._credentials_of, self._open_client = credentials_of, open_client
        self._clients: dict[int, object] = {}

    async def account(self, id_instance: int) -> str | None:
        """The account (wid) on the instance now; None when it cannot be asked. Raises what the client raises."""
        client = self._clients.get(id_instance)
        if client is None:
            credentials = await self._credentials_of(id_instance)
            if credentials is None:
                return None
            client = self._clients[id_instance] = self._open_client(credentials)
        return (await client.get_settings()).wid  # type: ignore[attr-defined]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()  # type: ignore[attr-defined]
        self._clients.clear()


@dataclass
class RelayCounters:
    """What the relay did since it started (``GET /health``)."""

    forwarded: int = 0
    held_back: int = 0
    app_refused: int = 0  # the app answered non-2xx or not at all: GREEN-API was told to re-send
    not_json: int = 0  # forwarded unchanged without a verdict
    account_checks: int = 0
    account_check_failures: int = 0
    prefect_calls: int = 0  # credential reads, account hand-overs, held-back flushes


@dataclass
class _Instance:
    known: KnownAccount | None = None
    reported_wid: str | None = None  # the last account handed to the report service
    check_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    warned_at: float = float("-inf")
    check_failed_at: float = float("-inf")


class AccountWatch:
    """What the relay knows of each instance's account, kept fresh by GetSettings checks while notifications come.
    ``on_new_account(id, wid)`` is called (in the background) on evidence that the account changed (a check found
    another account than known, or a notification of another account was held back), so the report service can
    start account_changed handling; it returns False when that could not be done, and the next evidence tries
    again."""

    def __init__(self, checker: AccountChecker, counters: RelayCounters, *,
                 on_new_account: Callable[[int, str], Awaitable[bool]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._checker, self._counters, self._on_new_account, self._clock = checker, counters, on_new_account, clock
        self._instances: dict[int, _Instance] = {}
        self._background: set[asyncio.Task] = set()

    def _of(self, id_instance: int) -> _Instance:
        return self._instances.setdefault(id_instance, _Instance())

    def learn(self, hook: GreenApiWebhook) -> None:
        """An ``authorized`` stateInstanceChanged says which account came, as of its timestamp."""
        wid = account_of(hook.stateInstance, hook.instanceData.wid)
        if wid is None or hook.timestamp is None:
            return
        entry = self._of(hook.instanceData.idInstance)
        if entry.known is None or hook.timestamp > entry.known.as_of:
            entry.known = KnownAccount(wid, float(hook.timestamp))
        entry.reported_wid = wid  # the report service decides on this webhook itself

    async def verdict(self, id_instance: int, wid: str | None, timestamp: int | None) -> Verdict:
        """Forward or hold; asks GREEN-API first when what is known is not enough (one check at a time per instance),
        and in the background when it soon will not be, so a steady stream never waits for a check."""
        entry = self._of(id_instance)
        now = self._clock()
        first = judge(wid, timestamp, entry.known, now)
        if first is not Verdict.check:
            if needs_refresh(entry.known, now) and not entry.check_lock.locked():
                self._in_background(self._refresh(id_instance, entry))
            return first
        if now - entry.check_failed_at < RECHECK_AFTER_FAILURE_SECONDS:
            return Verdict.forward  # it could not be asked a moment ago: no verdict on a guess, and no wait
        async with entry.check_lock:
            # A check that finished while this one waited may be enough.
            again = judge(wid, timestamp, entry.known, self._clock())
            if again is not Verdict.check:
                return again
            verdict = after_check(wid, await self._check(id_instance, entry))
            if verdict is Verdict.hold:  # a notification of another account: evidence that the account changed
                self._report_change(id_instance, entry)
            return verdict

    async def _refresh(self, id_instance: int, entry: _Instance) -> None:
        async with entry.check_lock:
            if needs_refresh(entry.known, self._clock()):
                await self._check(id_instance, entry)

    def _in_background(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _check(self, id_instance: int, entry: _Instance) -> KnownAccount | None:
        self._counters.account_checks += 1
        try:
            wid = await self._checker.account(id_instance)
        except Exception as exc:  # GREEN-API or Prefect did not answer: no verdict on a guess
            self._counters.account_check_failures += 1
            entry.check_failed_at = self._clock()
            self._warn(entry, "instance %s: the account could not be checked (%s); forwarded", id_instance, type(exc).__name__)
            return None
        if wid is None:
            entry.check_failed_at = self._clock()
            self._warn(entry, "instance %s: no greenapi-instance block, so its account cannot be checked; forwarded", id_instance)
            return None
        before, entry.known = entry.known, KnownAccount(wid, self._clock())
        if before is not None and same_account(before.wid, wid) is False:
            self._report_change(id_instance, entry)
        return entry.known

    def _report_change(self, id_instance: int, entry: _Instance) -> None:
        """Evidence of a change (a check found another account than known, or a notification of another account
        was held back): hand the account now on the instance over, in the background, unless it was already.
        Only on evidence: a relay's first check of an instance asks Prefect nothing."""
        wid = entry.known.wid if entry.known is not None else ""
        if wid and self._on_new_account is not None and same_account(wid, entry.reported_wid) is not True:
            entry.reported_wid = wid
            self._in_background(self._report(id_instance, wid, entry))

    async def _report(self, id_instance: int, wid: str, entry: _Instance) -> None:
        """Hand the account found over; if that fails (Prefect down), the next check tries again."""
        assert self._on_new_account is not None
        try:
            handed = await self._on_new_account(id_instance, wid)
        except Exception as exc:
            logger.warning("relay: instance %s: the account found was not handed over (%s)", id_instance, type(exc).__name__)
            handed = False
        if handed is False and entry.reported_wid == wid:
            entry.reported_wid = None

    def _warn(self, entry: _Instance, message: str, *args: object) -> None:
        now = self._clock()
        if now - entry.warned_at >= WARN_EVERY_SECONDS:
            entry.warned_at = now
            logger.warning("relay: " + message, *args)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._checker.close()


class HeldBackLedger:
    """Counts held-back notifications per instance and hands them to Prefect in batches (every ``flush_seconds``):
    an event ``greenapi.relay.held-back`` and the instance's running total (``instances list`` shows it). A flush
    that fails keeps its counts for the next one. Never the message, only counts."""

    def __init__(self, flush: Callable[[int, int], Awaitable[None]], counters: RelayCounters, flush_seconds: float = 2.0) -> None:
        self._flush_one, self._counters, self.flush_seconds = flush, counters, flush_seconds
        self._pending: dict[int, int] = {}
        self._task: asyncio.Task | None = None

    def add(self, id_instance: int) -> None:
        self._pending[id_instance] = self._pending.get(id_instance, 0) + 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._later())

    async def _later(self) -> None:
        await asyncio.sleep(self.flush_seconds)
        await self.flush()
        if self._pending:  # a failed flush: try again later
            self._task = asyncio.create_task(self._later())

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for id_instance, count in pending.items():
            self._counters.prefect_calls += 1
            try:
                await self._flush_one(id_instance, count)
            except Exception as exc:
                logger.warning("relay: held-back count for instance %s not recorded yet (%s); kept", id_instance, type(exc).__name__)
                self._pending[id_instance] = self._pending.get(id_instance, 0) + count

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pending:
            await self.flush()


@dataclass(frozen=True)
class RelayAnswer:
    """What to answer GREEN-API: ``status`` and a JSON body."""

    status: int
    body: dict


class Relay:
    """One notification in, a verdict, then forwarded (answer = the app's) or held back (200)."""

    def __init__(self, forwarder: Forwarder, watch: AccountWatch, ledger: HeldBackLedger, counters: RelayCounters,
                 state_webhook: Callable[[GreenApiWebhook], Awaitable[RelayAnswer | None]]) -> None:
        self.forwarder, self.watch, self.ledger, self.counters = forwarder, watch, ledger, counters
        self._state_webhook = state_webhook

    async def handle(self, body: bytes, content_type: str | None) -> RelayAnswer:
        hook = _webhook_of(body)
        if hook is None:
            self.counters.not_json += 1
            logger.warning("relay: a body that is not a GREEN-API webhook was forwarded unchanged (no verdict)")
            return await self._forward(body, content_type, None)
        data = hook.instanceData
        if hook.typeWebhook == STATE_INSTANCE_CHANGED:
            self.watch.learn(hook)
            refused = await self._state_webhook(hook)  # acted on first: a 503 here means nothing was forwarded
            return refused if refused is not None else await self._forward(body, content_type, data.idInstance)
        if await self.watch.verdict(data.idInstance, data.wid, hook.timestamp) is Verdict.hold:
            self.counters.held_back += 1
            self.ledger.add(data.idInstance)
            return RelayAnswer(200, {"status": "held_back", "why": "a notification of an account no longer on the instance"})
        return await self._forward(body, content_type, data.idInstance)

    async def _forward(self, body: bytes, content_type: str | None, id_instance: int | None) -> RelayAnswer:
        result = await self.forwarder.forward(body, content_type, id_instance)
        if result.accepted:
            self.counters.forwarded += 1
            return RelayAnswer(200, {"status": "forwarded", "appStatus": result.status})
        self.counters.app_refused += 1
        logger.warning("relay: not delivered to the app at %s: %s; GREEN-API will send it again", self.forwarder.host, result.why_not())
        return RelayAnswer(504 if result.failure == "timeout" else 502, {"detail": f"{result.why_not()}; re-send later"})

    async def close(self) -> None:
        await self.ledger.close()
        await self.watch.close()
        await self.forwarder.close()


def _webhook_of(body: bytes) -> GreenApiWebhook | None:
    try:
        return GreenApiWebhook.model_validate(json.loads(body.decode("utf-8")))
    except (UnicodeDecodeError, ValueError, ValidationError, RecursionError):
        return None
