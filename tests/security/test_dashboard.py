"""The threat dashboard: KPIs, charts' data, live table, window picker, CSV export, query count."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from hub.choices import Role
from security.choices import AlertCategory, AlertStatus, Severity, Verdict
from security.models import Alert, Scan
from tests.security.threatdash_helpers import make_connection, raise_alert

pytestmark = pytest.mark.django_db


@pytest.fixture
def analyst(member_factory):
    return member_factory(Role.SECURITY_ANALYST)


def _scan(org, *, verdict=Verdict.ALLOW, detectors=(), agent="", app="", ago=timedelta(minutes=5)):
    return Scan.objects.create(
        organization=org,
        profile_name="default",
        verdict=verdict,
        action="block" if verdict == Verdict.BLOCK else "allow",
        detectors_hit=list(detectors),
        finding_count=len(detectors),
        agent=agent,
        app=app,
        created_at=timezone.now() - ago,
    )


def _charts(response):
    html = response.content.decode()
    start = html.index('id="threatdash-charts"')
    start = html.index(">", start) + 1
    return json.loads(html[start : html.index("</script>", start)])


def test_the_dashboard_shows_kpis_charts_and_tables_of_the_window(analyst, logged_in, other_org):
    org = analyst.organization
    connection = make_connection(org, name="fra-gpu-link")
    raise_alert(org, key="a", severity=Severity.CRITICAL, connection=connection, title="Egress spike on fra-gpu-link")
    raise_alert(org, key="b", severity=Severity.MEDIUM, category=AlertCategory.SOVEREIGNTY, connection=connection)
    resolved = raise_alert(org, key="c", severity=Severity.LOW)
    Alert.objects.filter(pk=resolved.pk).update(status=AlertStatus.RESOLVED)
    _scan(org, verdict=Verdict.BLOCK, detectors=["prompt_injection"], agent="support-bot", app="helpdesk")
    _scan(org, detectors=["sensitive_data"], agent="support-bot", app="helpdesk")
    _scan(org, agent="coder", app="ide")
    _scan(org, verdict=Verdict.BLOCK, detectors=["secrets"], ago=timedelta(days=3))  # outside 24h
    raise_alert(other_org, key="x", title="globex-only alert")

    response = logged_in(analyst).get(reverse("security:dashboard"))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="kpi-open">2<' in page  # the resolved one is not open
    assert 'id="kpi-scans">3<' in page
    assert 'id="kpi-block-rate">33.3 %<' in page
    assert "support-bot" in page
    assert "helpdesk" in page
    assert "fra-gpu-link" in page  # top connections and the live table
    assert "globex-only alert" not in page
    charts = _charts(response)
    assert charts["severity"]["data"][0]["y"] == [1, 0, 1, 0]  # critical, high, medium, low (open only)
    assert {t["name"] for t in charts["timeline"]["data"]} >= {"Exfiltration suspected", "Sovereignty"}
    assert dict(zip(charts["detectors"]["data"][0]["y"], charts["detectors"]["data"][0]["x"], strict=True)) == {
        "Prompt injection": 1,
        "Sensitive data": 1,
    }
    world = charts["world"]["data"][0]
    assert world["type"] == "scattergeo"
    assert any("FR" in text and "2 alerts" in text for text in world["text"])
    # No inline script: the figures are a JSON data island read by static/js/threatdash.js.
    assert "threatdash.js" in page
    assert "plotly.min.js" in page


def test_the_window_picker_widens_what_is_counted(analyst, logged_in):
    _scan(analyst.organization, verdict=Verdict.BLOCK, detectors=["secrets"], ago=timedelta(days=3))
    client = logged_in(analyst)
    assert 'id="kpi-scans">0<' in client.get(reverse("security:dashboard") + "?window=24h").content.decode()
    assert 'id="kpi-scans">1<' in client.get(reverse("security:dashboard") + "?window=7d").content.decode()
    assert (
        'id="kpi-scans">1<'
        in client.get(reverse("security:dashboard") + "?window=nonsense&window=30d").content.decode()
    )


def test_the_live_table_shows_new_alerts_and_filters(analyst, logged_in):
    org = analyst.organization
    client = logged_in(analyst)
    url = reverse("security:dashboard-live")
    assert "No alerts match" in client.get(url).content.decode()
    raise_alert(org, key="spike", title="Egress spike on link-1", severity=Severity.HIGH)
    raise_alert(org, key="lock", title="Account locked", severity=Severity.MEDIUM, category=AlertCategory.LOGIN_LOCKOUT)
    body = client.get(url).content.decode()
    assert "Egress spike on link-1" in body
    assert "Account locked" in body
    body = client.get(url, {"severity": "HIGH"}).content.decode()
    assert "Egress spike on link-1" in body
    assert "Account locked" not in body
    assert "<html" not in body  # a fragment for htmx


def test_csv_export_of_the_window(analyst, logged_in):
    org = analyst.organization
    raise_alert(org, key="new", title="Fresh one")
    old = raise_alert(org, key="old", title="Old one")
    Alert.objects.filter(pk=old.pk).update(last_seen=timezone.now() - timedelta(days=10))
    response = logged_in(analyst).get(reverse("security:dashboard-export"), {"window": "7d"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["title"] for r in rows] == ["Fresh one"]
    assert rows[0]["severity"] == "HIGH"


def test_a_bad_filter_on_export_is_a_400(analyst, logged_in):
    response = logged_in(analyst).get(reverse("security:dashboard-export"), {"severity": "PURPLE"})
    assert response.status_code == 400


def test_the_dashboard_does_not_run_more_queries_with_more_data(analyst, logged_in):
    org = analyst.organization
    client = logged_in(analyst)
    connection = make_connection(org)
    raise_alert(org, key="k0", connection=connection)
    _scan(org, detectors=["secrets"], agent="a0")
    client.get(reverse("security:dashboard"))
    with CaptureQueriesContext(db) as few:
        client.get(reverse("security:dashboard"))
    for i in range(1, 30):
        raise_alert(org, key=f"k{i}", connection=make_connection(org, name=f"c{i}") if i % 5 == 0 else None)
        _scan(org, detectors=["secrets", "urls"], agent=f"a{i}", app=f"app{i % 3}")
    client.get(reverse("security:dashboard"))
    with CaptureQueriesContext(db) as many:
        client.get(reverse("security:dashboard"))
    assert len(many) == len(few), "\n".join(q["sql"][:150] for q in many.captured_queries)
    assert len(few) <= 25


def test_finished_hours_come_from_the_rollups_with_the_same_figures(analyst):
    from security import dashboard, rollups

    org = analyst.organization
    now = timezone.now()
    finished_hour = rollups.floor_hour(now) - timedelta(hours=3)
    for moment in (
        now - timedelta(minutes=1),
        finished_hour + timedelta(minutes=20),
        finished_hour + timedelta(minutes=30),
    ):
        _scan(org, verdict=Verdict.BLOCK, detectors=["secrets"], agent="bot", ago=now - moment)
    _scan(org, verdict=Verdict.BLOCK, detectors=["secrets"], agent="bot", ago=timedelta(hours=30))
    for hours_ago in (2.5, 50):
        alert = raise_alert(org, key=f"k{hours_ago}")
        Alert.objects.filter(pk=alert.pk).update(created_at=timezone.now() - timedelta(hours=hours_ago))
    window = dashboard.window_for("24h")
    first = dashboard.summary(org=org, window=window)  # nothing rolled up yet: raw rows
    assert (first["kpis"]["scans"], first["kpis"]["new_alerts"]) == (3, 1)
    assert first["detectors"] == [{"detector": "secrets", "label": "Secrets", "scans": 3}]
    assert first["top_agents"] == [{"name": "bot", "scans": 3, "flagged": 3, "blocked": 3}]
    assert sum(first["scans_over_time"]["block"].values()) == 3
    rollups.rollup_advance()
    from security.models import DashboardRollup

    assert DashboardRollup.objects.get(organization=org, hour=finished_hour, kind="verdict").n == 2
    again = dashboard.summary(org=org, window=window)
    assert {k: v for k, v in again.items() if k not in ("since", "until")} == {
        k: v for k, v in first.items() if k not in ("since", "until")
    }
    week = dashboard.summary(org=org, window=dashboard.window_for("7d"))
    assert (week["kpis"]["scans"], week["kpis"]["new_alerts"]) == (4, 2)
    month = dashboard.summary(org=org, window=dashboard.window_for("30d"))
    assert sum(month["alerts_over_time"]["exfiltration"].values()) == 2
    assert all(key.endswith("T00:00:00+00:00") for key in month["alerts_over_time"]["exfiltration"])


def test_the_charts_data_island_cannot_end_its_script():
    import json as json_module

    from security.dashboard import json_island

    value = {"name": "</script><script>alert(1)</script>", "amp": "a & b", "n": 1.5}
    html = str(json_island("threatdash-charts", value))
    assert html.startswith('<script id="threatdash-charts" type="application/json">')
    body = html.removeprefix('<script id="threatdash-charts" type="application/json">').removesuffix("</script>")
    assert not {"<", ">", "&"} & set(body)
    assert json_module.loads(body) == value
