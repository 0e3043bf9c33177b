"""Following the log: the follower engine, the async projection daemon, Python subscribers.

- :mod:`~jsproj.follow.engine`: what every follower shares -- the waker (LISTEN and brisk polling), the
  backoff, the lease (a session advisory lock), the follower's run loop; projections and subscribers are
  two kinds of processor on it;
- :mod:`~jsproj.follow.daemon`: async projections, exactly once, shared among any number of daemons;
- :mod:`~jsproj.follow.subscriptions`: host-language handlers with their checkpoint in their transaction.

Every follower reads the log through :mod:`jsproj.store.log`.
"""
