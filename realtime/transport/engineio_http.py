"""HTTP requests to ``/socket.io/``: long-polling is not offered, so they get Engine.IO's error.

Clients must use ``transports: ["websocket"]``. The body and status are what an Engine.IO
server answers for a transport it does not serve, so clients report a clear reason.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

# Engine.IO server error codes.
TRANSPORT_UNKNOWN = (0, "Transport unknown")
BAD_REQUEST = (3, "Bad request")
UNSUPPORTED_PROTOCOL_VERSION = (5, "Unsupported protocol version")


def engineio_http(request: HttpRequest) -> JsonResponse:
    if request.GET.get("EIO") != "4":
        code, message = UNSUPPORTED_PROTOCOL_VERSION
    elif request.GET.get("transport") != "websocket":
        code, message = TRANSPORT_UNKNOWN
    else:  # a WebSocket transport asked for over plain HTTP
        code, message = BAD_REQUEST
    return JsonResponse({"code": code, "message": message}, status=400)
