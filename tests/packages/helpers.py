from datetime import timedelta

from django.utils import timezone

from billing.models import ResourcePackage
from tests.factories import cny


def make_package(**over) -> ResourcePackage:
    fields = {
        "name_zh": "GLM 资源包",
        "name_en": "GLM package",
        "models_covered": ["glm-4"],
        "face_micro": 10_000_000,  # 10 CNY of usage
        "price": cny("8.00"),
        "validity_days": 30,
        "sale_starts_at": timezone.now() - timedelta(days=1),
        "per_user_limit": None,
    }
    fields.update(over)
    return ResourcePackage.objects.create(**fields)
