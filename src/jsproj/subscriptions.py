"""``jsproj.subscriptions``, the documented import path of :mod:`jsproj.follow.subscriptions`."""

from jsproj.follow.subscriptions import (
    LOCK_CLASS,
    Options,
    Runner,
    Subscriber,
    Subscription,
    load_subscribers,
    subscribe,
    subscriber,
)

__all__ = [
    "LOCK_CLASS",
    "Options",
    "Runner",
    "Subscriber",
    "Subscription",
    "load_subscribers",
    "subscribe",
    "subscriber",
]
