"""`python -m app`: serve the API with uvicorn on the configured host and port."""

from __future__ import annotations

import uvicorn

from app.config import Settings
from app.logs import configure_logging
from app.main import create_app


def main() -> None:
    configure_logging()
    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.server.host, port=settings.server.port, log_config=None)


if __name__ == "__main__":
    main()
