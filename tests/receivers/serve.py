"""`python -m tests.receivers.serve --data D --port P`: the API with the receiver routes, under uvicorn.

Until api/app.py includes the receiver routes, this is how the tests get a real server with them."""

from __future__ import annotations

import argparse

import uvicorn

import trailseal
from trailseal.api import create_app
from trailseal.api import receivers as http_receivers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = create_app(trailseal.open(args.data))
    if not any(getattr(r, "path", None) == "/v1/k8s/audit" for r in app.router.routes):
        app.router.routes.extend(http_receivers.routes)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", timeout_keep_alive=5)


if __name__ == "__main__":
    main()
