"""sendMessage: validate, record, enqueue; the route response is the `accepted` frame. Also the two actions of
attachments that sign S3 requests (requestUpload, getAttachment): the function that checks uploads is the only
route that may sign them (least privilege, assistant.wiring)."""

from __future__ import annotations

from assistant.coldstart import collection_paused

# Imported with garbage collection paused, then frozen: no collection passes over what the container keeps for life
# (assistant.coldstart).
with collection_paused():
    from aws_lambda_powertools.metrics import MetricUnit

    from assistant.client_frames import ClientFrameModel, new_id
    from assistant.function_dependencies import send_message as build
    from assistant.lifecycle import PerContainer
    from assistant.message_frames import (
        Accepted,
        AttachmentFrame,
        GetAttachment,
        RequestUpload,
        SendMessage,
        UploadFrame,
    )
    from assistant.observability import Metric, metrics
    from assistant.routes import MessageEvent, RouteAction, websocket_route
    from assistant.settings import SendMessageSettings

#: Built at the first invocation, kept for the container's life.
dependencies = PerContainer(lambda: build.send_message(SendMessageSettings.from_env()))


def send_message(event: MessageEvent, frame: SendMessage) -> Accepted:
    accepted = (
        dependencies()
        .intake()
        .accept(
            user_id=event.request_context.authorizer.user_id,
            connection_id=event.request_context.connection_id,
            frame=frame,
        )
    )
    metrics.add_metric(name=Metric.MESSAGES_ACCEPTED.value, unit=MetricUnit.Count, value=1)
    return accepted


def request_upload(event: MessageEvent, frame: RequestUpload) -> UploadFrame:
    deps = dependencies()
    user_id = event.request_context.authorizer.user_id
    deps.rate_limiter.take(user_id, "requestUpload", deps.settings.rate_limit_request_upload)
    upload_id = new_id("u")
    post = deps.uploads.request(
        user_id, upload_id=upload_id, file_name=frame.file_name, content_type=frame.content_type, size=frame.size
    )
    return UploadFrame(upload_id=upload_id, url=post["url"], fields=post["fields"], expires_at=post["expires_at"])


def get_attachment(event: MessageEvent, frame: GetAttachment) -> AttachmentFrame:
    deps = dependencies()
    user_id = event.request_context.authorizer.user_id
    deps.rate_limiter.take(user_id, "getAttachment", deps.settings.rate_limit_get_attachment)
    return AttachmentFrame(upload_id=frame.upload_id, url=deps.uploads.link(user_id, frame.upload_id))


#: What answers each of this function's actions, by frame type (the table of actions routes exactly these here).
ACTIONS: dict[type[ClientFrameModel], RouteAction] = {
    SendMessage: send_message,
    RequestUpload: request_upload,
    GetAttachment: get_attachment,
}

handler = websocket_route(
    ACTIONS,
    connections_api=lambda: dependencies().connections_api(),
    revocation=lambda: dependencies().revocation,
    refusals=lambda: dependencies().refusals,
    max_message_chars=lambda: dependencies().settings.max_message_chars,
)
