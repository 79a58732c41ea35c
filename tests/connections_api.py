"""A stand-in for the stage's ``@connections`` client in which some connections are gone."""

from __future__ import annotations

from typing import Any


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
