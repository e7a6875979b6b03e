"""Django's HTTP requests on ASGI, each handled whole in one worker thread.

Runway's views (DRF, the admin, the UI pages) are synchronous. Django's own
ASGI handler runs them in async mode: the request-started signal, the
middleware chain, the view, the request-finished signal and closing the
response each cross between the event loop and a thread created for the
request. On this project's machine that cost about 6 ms per request
(a redirect took 6.5 ms served this way, 0.3 ms in process; measured with
bench/http_transport.py and py-spy). Here the event loop only reads the body
and writes the answer; everything Django does for a request (signals,
middleware, view, closing) happens in one call on a pooled thread, as under
WSGI, so that thread's database connection is reused by later requests.
Websockets still go through channels (orchestrator/asgi.py).
"""
from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix


class SyncRequestHandler(ASGIHandler):
    """An ASGI application for Django's HTTP requests, with a synchronous middleware chain."""

    def __init__(self) -> None:
        super(ASGIHandler, self).__init__()  # BaseHandler: the async chain of ASGIHandler is not wanted
        self.load_middleware(is_async=False)

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"SyncRequestHandler serves HTTP only, not {scope['type']!r}")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            status, headers, chunks = await sync_to_async(self._respond, thread_sensitive=False)(scope, body_file)
        finally:
            body_file.close()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        for index, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1})
        if not chunks:
            await send({"type": "http.response.body", "body": b""})

    def _respond(self, scope: dict[str, Any], body_file) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
        """Everything Django does for one request, in this thread; the answer as ASGI needs it."""
        set_script_prefix(get_script_prefix(scope))
        scope = _with_content_length(scope, body_file)
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
        response._handler_class = self.__class__
        try:
            return response.status_code, _headers(response), _body(response, self.chunk_size)
        finally:
            response.close()  # sends request_finished: this thread's database connections are tidied


def _with_content_length(scope: dict[str, Any], body_file) -> dict[str, Any]:
    """A body sent chunked (no Content-Length) is read whole above; Django reads only as much as
    Content-Length says, so it is given the real length."""
    if any(name == b"content-length" for name, _ in scope.get("headers", [])):
        return scope
    size = body_file.seek(0, 2)
    body_file.seek(0)
    if not size:
        return scope
    return {**scope, "headers": [*scope.get("headers", []), (b"content-length", str(size).encode())]}


def _headers(response: HttpResponseBase) -> list[tuple[bytes, bytes]]:
    headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
    headers += [(b"Set-Cookie", cookie.output(header="").encode("ascii").strip())
                for cookie in response.cookies.values()]  # fmt: skip
    return headers


def _body(response: HttpResponseBase, chunk_size: int) -> list[bytes]:
    if not response.streaming:
        return [response.content]
    if isinstance(response, FileResponse):
        response.block_size = chunk_size
    return [bytes(chunk) for chunk in response.streaming_content if chunk]
