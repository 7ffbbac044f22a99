"""The HTTP clients a shard calls its endpoints with, built from the suite's concurrency settings.

Apart from the shard runner because `evaluator prepare` builds a judge client the same way (and must not import
the runner to do it), and because what "one pool and one limit per server" means is a concern of its own: the
runner only asks for an endpoint's client and for the figures the manifest records.
"""

from __future__ import annotations

from evaluator.contract import EndpointSummary
from evaluator.engine.cache import ResponseCache
from evaluator.engine.http import ChatClient, RetryPolicy, redact_url
from evaluator.engine.limiter import AdaptiveLimiter
from evaluator.suite import Concurrency, Endpoint


def retry_policy(concurrency: Concurrency) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=concurrency.max_attempts,
        backoff_base_s=concurrency.backoff_base_s,
        backoff_max_s=concurrency.backoff_max_s,
        timeout_s=concurrency.request_timeout_s,
    )


def new_limiter(concurrency: Concurrency) -> AdaptiveLimiter:
    return AdaptiveLimiter(concurrency.max_calls_per_endpoint, concurrency.min_calls_per_endpoint)


def new_client(endpoint: Endpoint, concurrency: Concurrency, limiter: AdaptiveLimiter | None = None) -> ChatClient:
    """A keep-alive client with an adaptive limit (its own, or one shared by the shards of one worker process),
    for one server (share it across endpoints there)."""
    limiter = limiter or new_limiter(concurrency)
    return ChatClient(endpoint.base_url, api_key=endpoint.api_key(), limiter=limiter, retry=retry_policy(concurrency))


class ShardClients:
    """The shard's clients: one pool and one adaptive limit per server (base_url), one client (with its own key)
    per endpoint, every one answering from the shard's response cache when it has one. Opened on entry."""

    def __init__(
        self, concurrency: Concurrency, cache: ResponseCache | None, endpoints: list[Endpoint],
        limiters: dict[str, AdaptiveLimiter] | None = None,
    ) -> None:  # fmt: skip
        self._servers: dict[str, ChatClient] = {}
        self._since: dict[str, tuple[int, int]] = {}  # a shared limiter's changes and cuts before this shard
        for endpoint in endpoints:
            url = endpoint.base_url
            if url not in self._servers:
                limiter = None
                if limiters is not None:
                    limiter = limiters.setdefault(url, new_limiter(concurrency))
                client = self._servers[url] = new_client(endpoint, concurrency, limiter)
                client.use_cache(cache)
                self._since[url] = (len(client.limiter.changes), client.limiter.decreases)

    def get(self, endpoint: Endpoint | None) -> ChatClient | None:
        """The client of an endpoint given at construction (its server's pool, its own key)."""
        if endpoint is None:
            return None
        return self._servers[endpoint.base_url].for_key(endpoint.api_key())

    def all(self) -> dict[str, ChatClient]:
        return self._servers

    def capacity(self) -> int:
        return sum(c.limiter.maximum for c in self._servers.values())

    async def __aenter__(self) -> ShardClients:
        for client in self._servers.values():
            await client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self._servers.values():
            await client.__aexit__()

    def summary(self) -> dict[str, EndpointSummary]:
        return {
            redact_url(url): EndpointSummary(
                calls=c.stats.calls,
                attempts=c.stats.attempts,
                by_status=dict(c.stats.by_status),
                peak_in_flight=c.limiter.peak_in_flight,
                final_limit=round(c.limiter.limit, 1),
                limit_decreases=c.limiter.decreases - self._since[url][1],
                limit_changes=list(c.limiter.changes[self._since[url][0] :]),
            )
            for url, c in self._servers.items()
        }
