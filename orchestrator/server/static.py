"""WhiteNoise for an ASGI server: static files without a thread hop for every other request.

WhiteNoise's middleware is synchronous only. In the async middleware chain of
an ASGI server, Django then wraps it in a thread and everything below it back
onto the event loop: each API request crossed threads three times instead of
once (measured with py-spy on the server during bench/http_transport.py).
This subclass answers in both modes; its async path serves a static file in a
worker thread and passes everything else straight on.
"""
from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response, *args, **kwargs) -> None:
        super().__init__(get_response, *args, **kwargs)
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self._async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request):
        if self.autorefresh:  # DEBUG: looks on disk
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)
