from django import template

register = template.Library()


@register.filter
def change_summary(value) -> str:
    """An audit before/after dict as ``key: value`` pairs a person can read."""
    if not value:
        return ""
    if not isinstance(value, dict):
        return str(value)

    def show(item):
        if item is None:
            return "—"
        if isinstance(item, list):
            return ", ".join(str(i) for i in item) or "—"
        return str(item)

    return "; ".join(f"{key}: {show(item)}" for key, item in value.items())
