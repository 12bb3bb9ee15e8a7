"""The catalog and offering pages as an enterprise member sees them."""

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hub.choices import Role
from tests.marketplace import test_search

catalog = test_search.catalog  # the four-offering catalog fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(customer, logged_in):
    return logged_in(customer.member)


def test_catalog_shows_results_facets_with_counts_and_the_price_date(catalog, browser):
    response = browser.get("/marketplace/", {"q": "H100"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "<strong>2</strong> offerings for “H100”" in page
    assert "8x H100 SXM" in page
    assert "1x H100 PCIe" in page
    assert "8x A100 80GB" not in page
    assert re.search(r'name="region" value="EMEA"\s*>\s*Europe, Middle East and Africa <span class="count">1<', page)
    assert "public list prices in USD as of the data" in page
    assert "≈ 1.0 ms from FR" in page  # the customer's port is in Frankfurt, like the H100's access point


def test_an_htmx_request_gets_only_the_results_fragment(catalog, browser):
    response = browser.get("/marketplace/", {"region": "APAC"}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="catalog-body"')
    assert "<html" not in body
    assert "1x H100 PCIe" in body
    assert "8x H100 SXM" not in body


def test_sort_by_latency_from_my_port_puts_the_nearest_first(catalog, browser):
    body = browser.get("/marketplace/", {"q": "H100", "sort": "latency", "from_metro": "FR"}).content.decode()
    assert body.index("8x H100 SXM") < body.index("1x H100 PCIe")
    assert "nearest to FR first" in body


def test_unknown_facet_values_are_ignored_with_a_message(catalog, browser):
    response = browser.get("/marketplace/", {"region": ["EMEA", "MARS"], "sort": "popularity"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Unknown region: &#x27;MARS&#x27;. It was ignored." in body
    assert "Unknown sort" in body
    assert "<strong>2</strong> offerings" in body  # EMEA still applies


@pytest.mark.parametrize("q", ["\x00\x01 H100", "x" * 5000, "<script>alert(1)</script>", "'; DROP TABLE --"])
def test_odd_search_text_is_answered_not_crashed(catalog, browser, q):
    response = browser.get("/marketplace/", {"q": q})
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in response.content.decode()


def test_a_huge_page_number_shows_the_last_page(catalog, browser):
    response = browser.get("/marketplace/", {"page": "9" * 40})
    assert response.status_code == 200
    body = response.content.decode()
    assert "There is only 1 page; showing the last." in body
    assert "llama-70b-instruct" in body


def test_pages_link_to_the_next_one_and_keep_the_filters(gpu_cloud, browser, make_offering):
    for i in range(26):
        make_offering(gpu_cloud, name=f"GPU node {i:02d}")
    body = browser.get("/marketplace/", {"q": "node", "region": "EMEA"}).content.decode()
    assert "Page 1 of 2" in body
    assert 'href="?q=node&amp;sort=relevance&amp;from_metro=FR&amp;region=EMEA&amp;page=2"' in body
    second = browser.get("/marketplace/", {"q": "node", "region": "EMEA", "page": 2}).content.decode()
    assert "GPU node 25" in second or "GPU node 00" in second


def test_the_catalog_page_runs_a_constant_number_of_queries(gpu_cloud, browser, make_offering):
    make_offering(gpu_cloud, name="GPU a")
    with CaptureQueriesContext(connection) as few:
        browser.get("/marketplace/", {"q": "GPU", "region": "EMEA"})
    for i in range(20):
        make_offering(gpu_cloud, name=f"GPU b{i}")
    with CaptureQueriesContext(connection) as many:
        browser.get("/marketplace/", {"q": "GPU", "region": "EMEA"})
    assert len(few) == len(many)


def test_offering_page_shows_specs_reach_latency_price_and_connect(catalog, browser):
    response = browser.get(f"/marketplace/offerings/{catalog['a100'].public_id}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "14.32 USD per hour" in body
    assert '<th scope="row">GPU memory</th><td>40 GB each</td>' in body
    assert 'data-testid="connect"' in body
    island = re.search(r'<script id="reach-map-data" type="application/json">(.*?)</script>', body, re.S)
    figure = json.loads(island.group(1))
    assert figure["data"][0]["text"] == ["DC", "FR"]
    assert figure["data"][1]["text"] == ["FR"]  # my port
    assert re.search(r"<script(?![^>]*(src=|application/json))", body) is None  # no inline script
    latency = re.search(r'<table id="latency">.*?</table>', body, re.S).group(0)
    assert "FR · acme-fra" in latency
    assert "≈ 1.0 ms" in latency


def test_a_viewer_sees_the_offering_but_no_connect_button(catalog, member_factory, logged_in):
    viewer = logged_in(member_factory(Role.VIEWER))
    body = viewer.get(f"/marketplace/offerings/{catalog['h100'].public_id}/").content.decode()
    assert "8x H100 SXM" in body
    assert 'data-testid="connect"' not in body
    assert viewer.get(f"/marketplace/offerings/{catalog['h100'].public_id}/connect/").status_code == 403


def test_another_providers_draft_is_not_found(gpu_cloud, browser, make_offering):
    draft, _ = make_offering(gpu_cloud, published=False)
    assert browser.get(f"/marketplace/offerings/{draft.public_id}/").status_code == 404
