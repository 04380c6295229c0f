"""Steps of GREEN-API's workaround for a webhookUrl that stops the queue being cleared or peeked (#1107).

detach: remember the webhookUrl and webhookUrlToken, then SetSettings an empty webhookUrl; wait until GetSettings
shows it empty; (the runbook clears and verifies with a peek); restore: SetSettings both back, then forget them.

The remembered values live in a Prefect Secret block, ``greenapi-detached-webhook-<idInstance>``, stored encrypted
on the Prefect server, so they survive a crash: the next run on the instance finds the block and restores them. The
block is written before the webhookUrl is changed and deleted only once SetSettings saved the old values again.
Neither value is ever logged, put in an event, a report, an artifact or a Variable.
"""

from __future__ import annotations

import asyncio
import json
import time

from prefect import get_run_logger, task
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from greenapi import GreenAPIClient
from instances.events import emit_step_event
from tasks.results import WebhookApplied, WebhookDetach, WebhookRestore


def detached_webhook_block_name(id_instance: int) -> str:
    return f"greenapi-detached-webhook-{id_instance}"


async def remembered_webhook(id_instance: int) -> dict[str, str] | None:
    """The webhook settings a detach remembered for the instance (``webhookUrl``, ``webhookUrlToken``), or None."""
    try:
        block = await Secret.aload(detached_webhook_block_name(id_instance))
    except ValueError:  # Prefect's answer for a block that does not exist
        return None
    value = block.get()
    return value if isinstance(value, dict) else None


async def forget_webhook(id_instance: int) -> None:
    """Delete the remembered settings (once they are back, or known to be stale)."""
    try:
        await Secret.adelete(detached_webhook_block_name(id_instance))
    except ValueError:
        pass  # already gone


async def _remember(id_instance: int, webhook_url: str, webhook_url_token: SecretStr) -> None:
    value = json.dumps({"webhookUrl": webhook_url, "webhookUrlToken": webhook_url_token.get_secret_value()})
    await Secret(value=SecretStr(value)).asave(detached_webhook_block_name(id_instance), overwrite=True)


@task(name="detach-webhook", task_run_name="detach-webhook-{client.id_instance}", cache_policy=NO_CACHE)
async def detach_webhook(client: GreenAPIClient) -> WebhookDetach:
    """Remember the webhookUrl and webhookUrlToken in a Secret block, then SetSettings an empty webhookUrl.

    Settings already remembered (an earlier run detached and did not restore) are kept, not overwritten:
    they are the original ones. SetSettings restarts the instance; GREEN-API applies it within 5 minutes.

    Args:
        client: the instance's GREEN-API client.

    Returns:
        Whether the settings were remembered and an empty webhookUrl was saved; never the values.
    """
    logger = get_run_logger()
    current = await client.get_settings()
    if not current.webhook_url_set:
        logger.info("Instance %s: no webhookUrl set, nothing to detach", client.id_instance)
        return WebhookDetach(remembered=False, detached=False)
    if await remembered_webhook(client.id_instance) is None:
        await _remember(client.id_instance, current.webhook_url, current.webhook_url_token)
    answer = await client.set_settings({"webhookUrl": ""})
    result = WebhookDetach(remembered=True, detached=answer.save_settings, token_set=bool(current.webhook_url_token.get_secret_value()))
    logger.info("Instance %s: webhookUrl remembered in Secret block %s; SetSettings of an empty webhookUrl %s",
                client.id_instance, detached_webhook_block_name(client.id_instance), "saved" if result.detached else "NOT saved")
    emit_step_event(client.id_instance, "webhook.detached", result.model_dump(mode="json"))
    return result


@task(name="wait-webhook-detached", task_run_name="wait-webhook-detached-{client.id_instance}", cache_policy=NO_CACHE)
async def wait_webhook_detached(client: GreenAPIClient, timeout_seconds: float, poll_seconds: float) -> WebhookApplied:
    """Read GetSettings until the webhookUrl shows empty (a peek is only proof then), at most ``timeout_seconds``.

    Args:
        client: the instance's GREEN-API client.
        timeout_seconds: how long to wait at most (GREEN-API applies SetSettings within 5 minutes).
        poll_seconds: the pause between reads.

    Returns:
        Whether the empty webhookUrl applied, after how long and how many reads.
    """
    started, reads = time.monotonic(), 0
    while True:
        reads += 1
        applied = not (await client.get_settings()).webhook_url_set
        waited = time.monotonic() - started
        if applied or waited + poll_seconds > timeout_seconds:
            break
        await asyncio.sleep(poll_seconds)
    result = WebhookApplied(applied=applied, waited_seconds=round(waited, 3), reads=reads)
    get_run_logger().info("Instance %s: empty webhookUrl %s after %.1f s (%d read(s))", client.id_instance,
                          "applied" if applied else "NOT applied", result.waited_seconds, reads)
    emit_step_event(client.id_instance, "webhook.detach-applied", result.model_dump(mode="json"))
    return result


@task(name="restore-webhook", task_run_name="restore-webhook-{client.id_instance}", cache_policy=NO_CACHE)
async def restore_webhook(client: GreenAPIClient) -> WebhookRestore:
    """SetSettings the remembered webhookUrl and webhookUrlToken back, then delete the Secret block.

    The block is deleted only when SetSettings saved them: otherwise the next run restores them. When GetSettings
    shows another webhookUrl than the remembered one, someone set it since: it is left as it is.

    Args:
        client: the instance's GREEN-API client.

    Returns:
        Whether remembered settings were found, saved back and forgotten; never the values.
    """
    remembered = await remembered_webhook(client.id_instance)
    if remembered is None:
        return WebhookRestore(found=False)
    webhook_url = str(remembered.get("webhookUrl", ""))
    current = await client.get_settings()
    if current.webhook_url_set and current.webhook_url != webhook_url:
        await forget_webhook(client.id_instance)  # someone set another webhookUrl since: theirs stands
        get_run_logger().warning("Instance %s: another webhookUrl was set since the detach: left as it is, the "
                                 "remembered settings are forgotten", client.id_instance)
        result = WebhookRestore(found=True, forgotten=True, superseded=True)
        emit_step_event(client.id_instance, "webhook.restored", result.model_dump(mode="json"))
        return result
    answer = await client.set_settings({
        "webhookUrl": webhook_url,
        "webhookUrlToken": SecretStr(str(remembered.get("webhookUrlToken", ""))),
    })
    if answer.save_settings:
        await forget_webhook(client.id_instance)
    result = WebhookRestore(found=True, restored=answer.save_settings, forgotten=answer.save_settings)
    if result.restored:
        get_run_logger().info("Instance %s: webhookUrl and webhookUrlToken put back (SetSettings saved; GREEN-API "
                              "applies it within 5 minutes)", client.id_instance)
    else:
        get_run_logger().error("Instance %s: webhookUrl and webhookUrlToken NOT put back (SetSettings did not save them); "
                               "Secret block %s kept for the next run", client.id_instance, detached_webhook_block_name(client.id_instance))
    emit_step_event(client.id_instance, "webhook.restored", result.model_dump(mode="json"))
    return result
