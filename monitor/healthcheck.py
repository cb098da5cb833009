"""`python -m monitor.healthcheck`: asks a running daemon's /healthz, for Docker's HEALTHCHECK
(the slim image has no curl). Exit 0 when it answers 200, else 1 with the reason.

The listener is found from the environment, not the config file (reading that would compile
every watchlist at each probe): MONITOR_HTTP_PORT (default 8080; "off" when the config has no
`http:`, and the check passes), MONITOR_HTTP_TOKEN when http.auth.token is set, and
MONITOR_HTTP_HOST (default 127.0.0.1)."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

TIMEOUT = 4.0


def check(environ: Mapping[str, str]) -> tuple[int, str]:
    port = environ.get("MONITOR_HTTP_PORT", "8080")
    if port == "off":
        return 0, "no http listener (MONITOR_HTTP_PORT=off): not checked"
    host = environ.get("MONITOR_HTTP_HOST", "127.0.0.1")
    token = environ.get("MONITOR_HTTP_TOKEN")
    request = urllib.request.Request(f"http://{host}:{port}/healthz",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return 0, response.read().decode("utf-8", "replace").strip()
    except urllib.error.HTTPError as error:  # 503 with the reasons, or 401: a wrong token
        return 1, f"{error.code}: {error.read().decode('utf-8', 'replace').strip()}"
    except OSError as error:
        return 1, f"no answer from http://{host}:{port}/healthz: {error}"


def main() -> int:
    code, message = check(os.environ)
    print(message)
    return code


if __name__ == "__main__":
    sys.exit(main())
