"""A case's history on users' pages in words (issue 22), through the same helpers staff
read it with (core.history): "Submitted → 待审核", never "submit → submitted"."""

from django import template
from django.contrib.contenttypes.models import ContentType

from ..history import action_label, state_label

register = template.Library()


def _model(record):
    # get_for_id is cached per process: no query per history row
    return ContentType.objects.get_for_id(record.content_type_id).model_class()


@register.filter
def action_words(record):
    return action_label(_model(record), record.action)


@register.filter
def state_words(record):
    return state_label(_model(record), record.to_state)
