"""Webhook delivery: POST each instance's queued notifications to its webhookUrl, as GREEN-API does.

One thread with its own asyncio loop; one task per instance that has something to send (instances in parallel,
one POST at a time per instance), each with its own ``httpx.AsyncClient`` (one connection): a single client's
pool rescans all its connections on every request, which halved the throughput with 50 instances. The rules (what to send, when, what an
answer does) live in ``webhooks.Webhooks``; this module only makes the POSTs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any
import httpx

from .state import EmulatorState
from .webhooks import Delivery

THREAD_NAME = "greenapi-emulator-delivery"
_POLL_SECONDS = 0.05  # arrivals and pauses ending on the clock are noticed at least this often
_log = logging.getLogger("emulator.delivery")


class _NotFromDeliveryThread(logging.Filter):
    """Drops httpx's and httpcore's records made on the delivery thread: one request line per webhook would
    flood a test's or the demo's log, and the webhook URLs are the user's."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName != THREAD_NAME


_QUIET = _NotFromDeliveryThread()
_QUIET_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")


def _quiet_http_logs() -> None:
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)


class Deliverer:
    """``Deliverer(state).start()`` delivers until ``stop()``; in-flight POSTs are cancelled on stop."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._changed: asyncio.Event | None = None
        self._stopping = False
        self._poke_pending = False
        self._ssl: Any = None  # one SSL context for every client: making one takes ~15 ms

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 5.0) -> "Deliverer":
        """Start the delivery thread; returns once its loop runs."""
        if self.running:
            return self
        _quiet_http_logs()
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        self._stopping = False
        self._poke_pending = False  # a poke scheduled on a loop that closed since would block every later one
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name=THREAD_NAME, daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("the webhook deliverer did not start in time")
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop delivering: in-flight POSTs are cancelled; their notifications stay queued."""
        self._stopping = True
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    # ------------------------------------------------------------ the loop's thread

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        finally:
            self._loop = None
            # Not asyncio.run(): it would wait for the default executor, where a DNS lookup may hang.
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _poke(self) -> None:
        """From any thread (the state calls it under its lock): wake every waiting task soon. Coalesced."""
        loop = self._loop
        if loop is None or self._poke_pending:
            return
        self._poke_pending = True
        try:
            loop.call_soon_threadsafe(self._broadcast)
        except RuntimeError:  # the loop closed meanwhile
            self._poke_pending = False

    def _broadcast(self) -> None:
        self._poke_pending = False
        if self._changed is not None:
            self._changed.set()
        self._changed = asyncio.Event()  # the next waiters wait for the next change

    async def _nap(self, seconds: float) -> None:
        """Sleep up to ``seconds`` (at most _POLL_SECONDS), waking early when the state pokes."""
        changed = self._changed
        assert changed is not None
        try:
            async with asyncio.timeout(max(0.0, min(seconds, _POLL_SECONDS))):
                await changed.wait()
        except TimeoutError:
            pass

    async def _main(self, ready: threading.Event) -> None:
        self._changed = asyncio.Event()
        self.state.add_listener(self._poke)
        tasks: dict[int, asyncio.Task[None]] = {}
        ready.set()
        try:
            while not self._stopping:
                for id_instance in self.state.webhooks.delivery_candidates():
                    task = tasks.get(id_instance)
                    if task is None or task.done():
                        tasks[id_instance] = asyncio.create_task(self._deliver(id_instance))
                for done in [i for i, t in tasks.items() if t.done()]:
                    del tasks[done]
                await self._nap(_POLL_SECONDS)
        finally:
            self.state.remove_listener(self._poke)
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    async def _deliver(self, id_instance: int) -> None:
        """One instance's deliveries, one at a time, until it has nothing to send now."""
        # trust_env=False: a proxy from the environment must not stand between the emulator and a local server.
        client = httpx.AsyncClient(verify=self._ssl, trust_env=False, follow_redirects=False)
        try:
            while not self._stopping:
                step = self.state.webhooks.next_delivery(id_instance)
                if step is None:
                    return
                if isinstance(step, float):
                    await self._nap(step)
                    continue
                try:
                    status, error = await _post(client, step)
                except asyncio.CancelledError:
                    self.state.webhooks.delivery_abandoned(step)
                    raise
                self.state.webhooks.delivery_answered(step, status, error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not end delivery for good: the next pass starts a new task
            _log.debug("emulator: delivery task for instance %s failed: %s", id_instance, type(exc).__name__)
        finally:
            try:
                await client.aclose()  # a cancelled task may still await here: it is cancelled only once
            except Exception:  # noqa: BLE001 (closing a broken connection: nothing left to do)
                pass


async def _post(client: httpx.AsyncClient, delivery: Delivery) -> tuple[int | None, str | None]:
    """POST one notification; (status, None) for an answer, (None, error) for none."""
    headers = {"Content-Type": "application/json"}
    if delivery.token:
        headers["Authorization"] = f"Bearer {delivery.token}"
    content = json.dumps(delivery.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    try:
        async with asyncio.timeout(delivery.timeout):
            response = await client.post(delivery.url, content=content, headers=headers, timeout=delivery.timeout)
        return response.status_code, None
    except (TimeoutError, httpx.TimeoutException):
        return None, "timeout"
    except httpx.ConnectError:
        return None, "connect"
    except Exception as exc:  # a dropped connection, a bad URL, ...: a failed delivery, named by its class
        return None, type(exc).__name__

