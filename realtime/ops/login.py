"""``POST /api/auth/token/``: simplejwt's login, with failure limits and a bounded password hash.

The view is async and runs on the server's event loop: parsing, field checks and the failure
limits (``realtime.auth.login``) cost no thread, and only the password check itself goes to
the process's password-check threads. Bodies, fields and answers are simplejwt's
(``TokenObtainPairView``): 200 ``{refresh, access}``, 400 with field errors, 401
``no_active_account``; refusals before the hash are 429 with ``Retry-After``:

* ``login_throttled``: the client IP or the username is over its failure limit;
* ``login_busy``: this process's password checks were all taken for longer than
  ``AETURNIS_PASSWORD_HASH_WAIT_S``.

Error bodies have simplejwt's shape, ``{"detail", "code"}``, and 429s add ``retryAfter`` (the
same seconds as the header, which a browser on another origin cannot read).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils.module_loading import import_string
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.views import TokenObtainPairView

from realtime.auth.login import LoginFailed, LoginThrottled, PasswordChecksBusy, login
from realtime.auth.sources import request_client_ip
from realtime.core import metrics

NO_ACTIVE_ACCOUNT = "No active account found with the given credentials"
# simplejwt's token views answer 401 with this challenge.
WWW_AUTHENTICATE = 'Bearer realm="api"'


def _error(status: int, detail: str, code: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code, **extra}, status=status)


def _too_many(detail: str, code: str, retry_after: int) -> JsonResponse:
    response = _error(429, detail, code, retryAfter=retry_after)
    response["Retry-After"] = str(retry_after)
    return response


def _credentials(request: HttpRequest) -> dict[str, Any]:
    """The body's fields, checked by the configured simplejwt serializer's own fields (no
    password is checked here). Raises DRF's ``ParseError``, ``UnsupportedMediaType`` or
    ``ValidationError``."""
    parsed = Request(request, parsers=[JSONParser(), FormParser(), MultiPartParser()])
    serializer = import_string(jwt_settings.TOKEN_OBTAIN_SERIALIZER)()
    attrs: dict[str, Any] = serializer.to_internal_value(parsed.data)
    return {"username": attrs[serializer.username_field], "password": attrs["password"]}


class TokenObtainView(View):
    """Takes a set of user credentials and returns an access and refresh JSON web token pair."""

    http_method_names = ["post", "options"]

    async def http_method_not_allowed(  # type: ignore[override]  # async, as every handler here
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> JsonResponse:
        """405 with a body, as simplejwt's DRF view answered."""
        response = _error(405, f'Method "{request.method}" not allowed.', "method_not_allowed")
        response["Allow"] = ", ".join(m.upper() for m in self.http_method_names)
        return response

    async def post(self, request: HttpRequest) -> JsonResponse:
        try:
            credentials = _credentials(request)
        except exceptions.ValidationError as exc:
            return JsonResponse(exc.detail, status=400, safe=False)
        except exceptions.APIException as exc:  # a body that cannot be parsed
            return _error(exc.status_code, str(exc.detail), str(exc.default_code))
        try:
            tokens = await login(request, ip=request_client_ip(request), **credentials)
        except LoginThrottled as exc:
            metrics.LOGIN_THROTTLED.inc()
            return _too_many(
                f"Too many failed logins; try again in {exc.retry_after} seconds",
                "login_throttled",
                exc.retry_after,
            )
        except PasswordChecksBusy as exc:
            metrics.LOGIN_BUSY.inc()
            return _too_many(
                f"Too many logins at once; try again in {exc.retry_after} seconds",
                "login_busy",
                exc.retry_after,
            )
        except LoginFailed:
            metrics.LOGIN_FAILED.inc()
            response = _error(401, NO_ACTIVE_ACCOUNT, "no_active_account")
            response["WWW-Authenticate"] = WWW_AUTHENTICATE
            return response
        metrics.LOGIN_OK.inc()
        return JsonResponse(tokens)


@extend_schema_view(
    post=extend_schema(
        summary="Log in: an access and refresh token pair",
        description="Takes a set of user credentials and returns an access and refresh JSON "
        "web token pair. Failed logins are limited per client IP and per username, and each "
        "server process checks a bounded number of passwords at once: refusals are 429 with "
        "Retry-After, decided before the password is checked.",
        responses={
            200: import_string(jwt_settings.TOKEN_OBTAIN_SERIALIZER),
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="field errors"),
            401: OpenApiResponse(OpenApiTypes.OBJECT, description="{detail, code}"),
            429: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="{detail, code: login_throttled | login_busy, retryAfter}, and "
                "Retry-After: too many failed logins from this address or for this username, "
                "or every password check of the process busy",
            ),
        },
    )
)
class TokenObtainSchema(TokenObtainPairView):
    """What the OpenAPI document says of ``TokenObtainView``: drf-spectacular reads DRF views
    only, so the URL's view carries this class as ``cls``. Never dispatched to."""


def token_obtain_view() -> Any:
    """The URL's view: ``TokenObtainView`` without CSRF checks (a login sends no cookie to
    protect; simplejwt's view is exempt too), documented as ``TokenObtainSchema``."""
    view: Any = csrf_exempt(TokenObtainView.as_view())
    view.cls = TokenObtainSchema
    view.initkwargs = {}
    return view
