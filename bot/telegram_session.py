"""The Bot API session: aiogram's AiohttpSession, its requests sent as JSON where they can be."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, cast

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods.base import TelegramType
from aiohttp import ClientError

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import TelegramMethod
    from aiogram.types import InputFile

_JSON_HEADERS: Final = {"Content-Type": "application/json"}


class JsonSession(AiohttpSession):
    """aiogram's session builds every request as a form: aiohttp's FormData makes a multipart
    writer (a random boundary read from os.urandom) and url-encodes each field, a tenth of the
    bot's CPU per /balance (make bench, py-spy). The Bot API takes the same fields as a JSON
    object; a request that uploads a file is still sent as aiogram sends it."""

    def build_json_body(self, bot: Bot, method: TelegramMethod[Any]) -> bytes | None:
        """The fields build_form_data would send, as one JSON object; None for an upload."""
        files: dict[str, InputFile] = {}
        body: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            # Nested objects stay objects here, where the form sends each as a JSON string.
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            # The form leaves out exactly these (every other value is a non-empty string there).
            if prepared is None or prepared == "":
                continue
            body[key] = prepared
        if files:
            return None
        return self.json_dumps(body).encode()

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 (aiogram's signature)
    ) -> TelegramType:
        body = self.build_json_body(bot, method)
        if body is None:
            return await super().make_request(bot, method, timeout)
        # aiogram 3.31's AiohttpSession.make_request, with the JSON body for the form.
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        try:
            async with session.post(
                url,
                data=body,
                headers=_JSON_HEADERS,
                # As aiogram passes it (aiohttp takes a number too, despite its hints).
                timeout=self.timeout if timeout is None else timeout,  # type: ignore[arg-type]
            ) as resp:
                raw_result = await resp.text()
        except TimeoutError as e:
            raise TelegramNetworkError(method=method, message="Request timeout error") from e
        except ClientError as e:
            raise TelegramNetworkError(method=method, message=f"{type(e).__name__}: {e}") from e
        response = self.check_response(
            bot=bot, method=method, status_code=resp.status, content=raw_result
        )
        return cast(TelegramType, response.result)
