"""Files: sendDocument, getFile and the /file/ download URL."""

from __future__ import annotations

import mimetypes

from aiohttp import web

from tests.fakes.telegram.messages import Messages
from tests.fakes.telegram.model import ApiError, UploadedFile, _json_response, _payload
from tests.support.telegram_rules import JsonDict, bad_request, check_caption


class Files(Messages):
    """Documents the bot sends and files it downloads."""

    def _send_document(self, params: JsonDict) -> JsonDict:
        document = params.get("document")
        if isinstance(document, UploadedFile):
            if not document.content:
                raise bad_request("file must be non-empty")
            mime_type = mimetypes.guess_type(document.file_name)[0] or document.content_type
            stored = self._store_file(document.file_name, document.content, mime_type)
        elif isinstance(document, str) and document in self._files:
            stored = self._files[document]
        elif not document:
            raise bad_request("there is no document in the request")
        else:
            # No network here: URLs and unknown file_ids cannot be fetched.
            raise bad_request("wrong file identifier/HTTP URL specified")
        raw_caption = params.get("caption")
        caption, entities = check_caption(
            raw_caption, params.get("parse_mode"), params.get("caption_entities")
        )
        content: JsonDict = {"document": stored.as_document()}
        if caption:
            content["caption"] = caption
            if entities:
                content["caption_entities"] = entities
        return self._new_bot_message(
            params, content, text=caption or None, raw_text=raw_caption, document=stored
        )

    def _get_file(self, params: JsonDict) -> JsonDict:
        stored = self._files.get(str(params.get("file_id", "")))
        if stored is None:
            raise bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _json_response(_payload(ApiError(401, "Unauthorized")), status=401)
        path = request.match_info["path"]
        for stored in self._files.values():
            if stored.file_path == path:
                return web.Response(
                    body=stored.content,
                    content_type=stored.mime_type or "application/octet-stream",
                )
        return _json_response(_payload(ApiError(404, "Not Found")), status=404)
