"""Compare: up to four offerings side by side, the selection in the URL, best values marked."""

import re

import pytest

from tests.marketplace import test_search

pytestmark = pytest.mark.django_db

catalog = test_search.catalog  # the four-offering catalog fixture


@pytest.fixture
def browser(customer, logged_in):
    return logged_in(customer.member)


def _row(body: str, label: str) -> list[tuple[str, bool]]:
    """The cells of the compare table's row ``label``: (text, marked best)."""
    row = re.search(rf'<tr data-group="[a-z]*"><th scope="row">{re.escape(label)}</th>(.*?)</tr>', body, re.S)
    assert row, f"no row {label!r}"
    return [(text, bool(best)) for best, text in re.findall(r'<td( class="best")?>(.*?)</td>', row.group(1))]


def test_three_offerings_side_by_side_with_the_best_values_marked(catalog, browser):
    ids = ",".join(str(catalog[k].public_id) for k in ("h100", "a100", "far"))
    response = browser.get("/marketplace/compare/", {"ids": ids})
    assert response.status_code == 200
    body = response.content.decode()
    assert _row(body, "Price per hour") == [("23.92 USD", False), ("14.32 USD", False), ("2.39 USD", True)]
    per_gpu = _row(body, "Price per GPU-hour")
    assert [best for _, best in per_gpu] == [False, True, False]  # 14.32 / 8 = 1.79 is the cheapest GPU-hour
    assert _row(body, "GPU memory")[0] == ("80 GB each", True)
    assert _row(body, "GPU memory")[1] == ("40 GB each", False)
    latency = _row(body, "Latency from FR (Frankfurt)")
    assert [best for _, best in latency] == [True, True, False]  # both Lambda offerings are in Frankfurt
    assert latency[2][0].endswith(" ms")
    assert _row(body, "Compliance")[0] == ("SOC 2", False)


def test_the_selection_is_kept_in_the_url_and_one_can_be_removed(catalog, browser):
    ids = [str(catalog[k].public_id) for k in ("h100", "a100")]
    body = browser.get("/marketplace/compare/", {"ids": ",".join(ids)}).content.decode()
    assert f'href="/marketplace/compare/?ids={ids[1]}"' in body  # "Remove" on the first column


def test_a_fifth_offering_is_refused_with_a_clear_message(catalog, gpu_cloud, browser, make_offering):
    fifth, _ = make_offering(gpu_cloud, name="Fifth GPU")
    ids = [str(o.public_id) for o in (*catalog.values(), fifth)]
    response = browser.get("/marketplace/compare/", {"ids": ",".join(ids)})
    assert response.status_code == 400
    body = response.content.decode()
    assert "You can compare up to 4 offerings; 1 more were not added." in body
    assert "Fifth GPU" not in body
    assert body.count('<th scope="col">') == 4


def test_the_catalog_offers_the_compare_link_for_the_ticked_offerings(catalog, browser):
    ids = [str(catalog[k].public_id) for k in ("h100", "a100", "far")]
    body = browser.get("/marketplace/", {"ids": ids}).content.decode()
    assert "Compare 3 selected" in body
    assert body.count("checked> Compare") == 3
    five = [*ids, str(catalog["model"].public_id), "00000000-0000-4000-8000-000000000000"]
    body = browser.get("/marketplace/", {"ids": five}).content.decode()
    assert "Compare takes up to 4 offerings; uncheck 1." in body


def test_drafts_and_malformed_ids_are_left_out(catalog, gpu_cloud, browser, make_offering):
    draft, _ = make_offering(gpu_cloud, name="Secret draft", published=False)
    ids = f"{catalog['h100'].public_id},{draft.public_id},not-a-uuid"
    body = browser.get("/marketplace/compare/", {"ids": ids}).content.decode()
    assert "Secret draft" not in body
    assert "1 of the chosen offerings is not in the catalog any more." in body
