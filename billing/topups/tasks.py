"""Celery entry points (thin): the rules live in services."""

from celery import shared_task
from django.utils import timezone


@shared_task(name="topups.expire_unpaid_topups")
def expire_unpaid_topups_task(limit=1000, max_batches=100):
    """Expire orders left unpaid past their payment window, batch by batch."""
    from .services import expire_unpaid_topups

    total = 0
    for _ in range(max_batches):
        done = expire_unpaid_topups(timezone.now(), limit)
        total += done
        if done < limit:
            break
    return total


@shared_task(name="topups.void_promotion_benefits")
def void_promotion_benefits_task(promotion_id, reason, batch_size=200):
    from .models import Promotion
    from .services import void_promotion_benefits

    promotion = Promotion.objects.get(pk=promotion_id)
    return void_promotion_benefits(promotion, actor=None, reason=reason, batch_size=batch_size)
