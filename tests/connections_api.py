"""Stand-ins for the stage's ``@connections`` client (the API Gateway Management API): one that records the order
of the calls, one in which some connections are gone."""

from __future__ import annotations

import json
from typing import Any


class RecordingApi:
    """The @connections client, recording the order of calls (moto forgets a connection's frames on delete): each as
    ``("post", connection id, the frame)`` or ``("delete", connection id, None)``."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, str, Any]] = []

    def order(self) -> list[tuple[str, str]]:
        """The calls without their frames: ``[("post", "conn-1"), ("delete", "conn-1")]``."""
        return [(call, connection) for call, connection, _ in self.calls]

    def post_to_connection(self, *, ConnectionId: str, Data: bytes) -> Any:
        self.calls.append(("post", ConnectionId, json.loads(Data)))
        return self._client.post_to_connection(ConnectionId=ConnectionId, Data=Data)

    def delete_connection(self, *, ConnectionId: str) -> Any:
        self.calls.append(("delete", ConnectionId, None))
        return self._client.delete_connection(ConnectionId=ConnectionId)


class GoneFor:
    """The stage's @connections client, except that API Gateway reports ``gone`` closed without a $disconnect: a post
    to one of them raises ``GoneException`` (410), as API Gateway answers; every other call goes to ``client``."""

    def __init__(self, client: Any, gone: set[str]) -> None:
        self._client = client
        self._gone = gone
        self.exceptions = client.exceptions

    def post_to_connection(self, **kwargs: Any) -> Any:
        if kwargs["ConnectionId"] in self._gone:
            raise self._client.exceptions.GoneException(
                {"Error": {"Code": "GoneException", "Message": "Gone"}, "ResponseMetadata": {"HTTPStatusCode": 410}},
                "PostToConnection",
            )
        return self._client.post_to_connection(**kwargs)
