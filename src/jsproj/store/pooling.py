"""What the sync and the asyncio store are made with alike: how long a connection may take, how much a read reads."""

DEFAULT_READ_LIMIT = 1000  # events per read_all, unless asked otherwise
CONNECT_TIMEOUT = 10  # seconds for a connection to PostgreSQL (the pool's, and the store's first check)
