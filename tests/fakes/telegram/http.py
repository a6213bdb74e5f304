"""The HTTP side: the aiohttp server, the Bot API endpoint (faults, errors, the call record)
and the /_control/ endpoints a test in another process drives the fake with."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import time
from typing import Any, Self

from aiohttp import web

from tests.fakes.telegram.callbacks import Callbacks
from tests.fakes.telegram.faults import Faults
from tests.fakes.telegram.files import Files
from tests.fakes.telegram.model import (
    MAX_UPLOAD_BYTES,
    ApiError,
    Call,
    UploadedFile,
    _json_response,
    _normalize_params,
    _payload,
)
from tests.fakes.telegram.users import UserMessages
from tests.fakes.telegram.webhook import Webhooks
from tests.support.telegram_rules import JsonDict, TelegramRefusal, bad_request

logger = logging.getLogger(__name__)


class HttpServer(UserMessages, Callbacks, Faults, Files, Webhooks):
    """The aiohttp server in front of the Bot API methods."""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._stopping = False
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_post("/_control/update", self._control_update)
        app.router.add_post("/_control/message", self._control_message)
        app.router.add_post("/_control/press", self._control_press)
        app.router.add_post("/_control/fail", self._control_fail)
        app.router.add_get("/_control/calls", self._control_calls)
        app.router.add_get("/_control/chats/{chat_id}", self._control_chat)
        # access_log=None: the bot token is in every URL, and tests need no request log.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}"
        logger.info("fake Telegram listening on %s", self.url)
        return self.url

    async def stop(self) -> None:
        self._stopping = True
        # Pending long polls return an empty batch at once instead of holding up cleanup.
        self._signal_update()
        await self.stop_pushing()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method_name = request.match_info["method"]
        canonical, handler = self._methods.get(method_name.lower(), (method_name, None))
        try:
            params = await self._read_params(request)
            unreadable = None
        except ValueError as exc:
            params, unreadable = {}, f"can't parse request: {exc}"
        call = Call(method=canonical, params=params, at=time.monotonic())
        self.calls.append(call)
        self._signal_change()
        if self._round_trip and canonical != "getUpdates":
            await asyncio.sleep(self._round_trip)
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            fault = self._take_fault(canonical)
            if fault is not None and fault.processed and handler is not None:
                self._check_chat(canonical, params)
                done = handler(params)
                if inspect.isawaitable(done):
                    await done
            if fault is not None and fault.drop_connection:
                call.status = -1
                call.description = "connection dropped"
                if request.transport is not None:
                    request.transport.abort()
                return web.Response()
            if fault is not None:
                parameters = None
                if fault.error_code == 429 and fault.retry_after is not None:
                    parameters = {"retry_after": fault.retry_after}
                raise ApiError(fault.error_code, fault.description, parameters)
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            if unreadable is not None:
                raise bad_request(unreadable)
            self._check_chat(canonical, params)
            result = handler(params)
            if inspect.isawaitable(result):
                result = await result
        except TelegramRefusal as error:
            call.status = error.error_code
            call.description = error.description
            self._signal_change()
            return _json_response(_payload(error), status=error.error_code)
        except Exception:
            # A bug in the fake must show up as such, not as a puzzling aiogram decode error.
            logger.exception("fake Telegram failed on %s", canonical)
            call.status = 500
            call.description = "Internal Server Error: the fake itself failed"
            self._signal_change()
            return _json_response(_payload(ApiError(500, call.description)), status=500)
        call.status = 200
        self._signal_change()
        return _json_response({"ok": True, "result": result})

    async def _read_params(self, request: web.Request) -> JsonDict:
        raw: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    raw.update(body)
            else:
                files: dict[str, UploadedFile] = {}
                for key, value in (await request.post()).items():
                    if isinstance(value, web.FileField):
                        files[key] = UploadedFile(
                            file_name=value.filename,
                            content=value.file.read(),
                            content_type=value.content_type,
                        )
                    else:
                        raw[key] = value
                for key, value in list(raw.items()):
                    # aiogram uploads as field=attach://<random> plus a part named <random>.
                    if isinstance(value, str) and value.startswith("attach://"):
                        attached = files.pop(value.removeprefix("attach://"), None)
                        if attached is not None:
                            raw[key] = attached
                raw.update(files)
        return _normalize_params(raw)

    async def _control_update(self, request: web.Request) -> web.Response:
        update_id = self.add_update(await request.json())
        return _json_response({"ok": True, "result": update_id})

    async def _control_message(self, request: web.Request) -> web.Response:
        body = await request.json()
        message_id = self.send_text(
            int(body["user_id"]),
            str(body["text"]),
            language_code=body.get("language_code", "en"),
            chat_id=body.get("chat_id"),
        )
        return _json_response({"ok": True, "result": message_id})

    async def _control_press(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            query_id = self.press_button(
                int(body["user_id"]),
                int(body["message_id"]),
                str(body["callback_data"]),
                check_button=bool(body.get("check_button", True)),
            )
        except AssertionError as exc:
            return _json_response({"ok": False, "description": str(exc)}, status=400)
        return _json_response({"ok": True, "result": query_id})

    async def _control_fail(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.fail_next(int(body.pop("n", 1)), **body)
        return _json_response({"ok": True, "result": True})

    async def _control_calls(self, request: web.Request) -> web.Response:
        method = request.query.get("method")
        calls = self.calls_of(method) if method else self.calls
        return _json_response({"ok": True, "result": [dataclasses.asdict(c) for c in calls]})

    async def _control_chat(self, request: web.Request) -> web.Response:
        chat_id = int(request.match_info["chat_id"])
        messages = self.chat_messages(chat_id, include_user=True)
        return _json_response({"ok": True, "result": [dataclasses.asdict(m) for m in messages]})
