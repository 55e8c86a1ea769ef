"""The HTTP site: landing page, what unknown URLs answer, trailing slashes, CORS, HTTPS."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings
from rest_framework.test import APIClient

from aeturnis.settings import cors_settings
from tests.conftest import access_for
from tests.services.test_realtime_api import ENDPOINTS, call, with_ids

pytestmark = pytest.mark.django_db

ALLOWED = "https://play.example.com"


def test_landing_page_links_everything_a_person_can_open(client: Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    text = page.content.decode()
    for link in ("/play/", "/admin/", "/api/docs/", "/api/asyncapi/", "/healthz", "/readyz"):
        assert f'href="{link}"' in text, link
    assert "ws://testserver/ws/game/" in text and "docs/" in text


@override_settings(DEBUG=True)
def test_unknown_url_is_a_plain_404_even_with_debug(client: Client) -> None:
    page = client.get("/no/such/page")
    assert page.status_code == 404
    text = page.content.decode()
    assert "Not Found" in text
    assert "URLconf" not in text and "admin/" not in text  # no list of URL patterns


@override_settings(DEBUG=True)
def test_missing_slash_still_redirects(client: Client) -> None:
    assert client.get("/admin")["Location"] == "/admin/"
    assert client.get("/api/docs")["Location"] == "/api/docs/"


@pytest.mark.parametrize("path", ["/api/realtime/nope", "/api/realtime/stats/x", "/api/realtime"])
def test_unknown_realtime_api_path_is_the_envelope_404(client: Client, path: str) -> None:
    response = client.post(path, {}, content_type="application/json")
    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "error": {"code": "NOT_FOUND", "message": "No such endpoint under /api/realtime/"},
    }


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[p for _, p, _ in ENDPOINTS])
def test_every_realtime_api_path_answers_with_and_without_a_trailing_slash(
    make_user: Any, method: str, path: str, body: dict[str, Any]
) -> None:
    staff, player = make_user("staffer", is_staff=True), make_user("someone")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {access_for(staff)}")
    path = path.replace("/presence/1", f"/presence/{player.pk}")
    for variant in (path, f"{path}/"):
        response = call(api, method, variant, with_ids(body, player.pk))
        assert response.status_code == 200, (variant, response.content)
        assert response.json()["success"] is True
    anonymous = call(APIClient(), method, f"{path}/", body)
    assert anonymous.status_code == 401 and anonymous.json()["success"] is False


def preflight(client: Client, path: str, origin: str) -> Any:
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )


@pytest.mark.parametrize("path", ["/api/realtime/stats", "/api/auth/token/"])
def test_cors_preflight_from_an_allowed_origin_may_send_credentials(
    client: Client, path: str
) -> None:
    with override_settings(**cors_settings([ALLOWED], debug=False)):
        response = preflight(client, path, ALLOWED)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ALLOWED
    assert response["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "authorization" in response["Access-Control-Allow-Headers"]


def test_cors_preflight_from_another_origin_is_refused(client: Client) -> None:
    with override_settings(**cors_settings([ALLOWED], debug=False)):
        response = preflight(client, "/api/realtime/stats", "https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Credentials" not in response


def test_cors_headers_stay_off_paths_outside_the_api(client: Client) -> None:
    with override_settings(**cors_settings([ALLOWED], debug=False)):
        response = preflight(client, "/play/", ALLOWED)
    assert "Access-Control-Allow-Origin" not in response


@override_settings(SECURE_SSL_REDIRECT=True, SECURE_HSTS_SECONDS=3600)
def test_https_redirect_spares_the_probes_and_metrics(client: Client) -> None:
    assert client.get("/")["Location"] == "https://testserver/"
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert client.get(probe).status_code == 200, probe
    secure = client.get("/", secure=True)
    assert secure.status_code == 200 and secure["Strict-Transport-Security"] == "max-age=3600"
