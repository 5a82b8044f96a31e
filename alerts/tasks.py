"""Celery tasks of the alerts app: thin, idempotent, on the `default` queue, taking ids."""

from celery import shared_task

from alerts import notify, observability, task_names


@shared_task(name=task_names.DELIVER, bind=True, acks_late=True, queue="default", max_retries=None,
             ignore_result=True)
def deliver_task(self, delivery_id):
    """One attempt of a delivery; a succeeded, failed or folded one is never sent again.

    Retries (408/429/5xx/timeouts/connection errors) come back through `self.retry` with the
    backoff chosen by alerts.notify; the attempt count lives on the Delivery row, not in
    Celery, so `max_retries` is unbounded here and LAB_WEBHOOK_MAX_ATTEMPTS is the limit.
    """
    wait = notify.delivery_attempt(delivery_id)
    observability.delivery_attempted(delivery_id)
    if wait is not None:
        raise self.retry(countdown=wait)


@shared_task(name=task_names.FLUSH_FOLDED, bind=True, acks_late=True, queue="default", max_retries=None,
             ignore_result=True)
def flush_folded_task(self, channel_id):
    """Send a channel's folded alerts once its rate-limit window has room again."""
    wait = notify.folded_flush(channel_id)
    if wait is not None:
        raise self.retry(countdown=wait)


@shared_task(acks_late=True, queue="default", ignore_result=True)
def requeue_stale_deliveries_task():
    """Periodic: re-queue deliveries whose message was lost (broker down), flush stale folds."""
    return notify.deliveries_requeue_stale()
