"""The ``demo`` source: the offline demo's candidates, as the demo image host lists them.

The image host (``python -m pipeline.imagehost``, which ``make demo`` starts) knows which of
its paths stand in for each class's search results. This source asks it once for every class
of the subset::

    POST {api}/demo/catalogue   {"wnids": [...], "per_class": N}
    -> {"candidates": [{"wnid", "path", "kind", "title", "creator", "license"}, ...]}

and makes each listed path a candidate URL on that host (``source_id`` is the item's kind:
a true picture, another class's, a near copy, a fault). The host is on 127.0.0.1, so the
download fetches from it only when told ``--allow-private-hosts``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from pipeline import DEMO_PORT, USER_AGENT
from pipeline.errors import PipelineError

from .search import SearchResult

DEFAULT_API = f"http://127.0.0.1:{DEMO_PORT}"
PER_CLASS = 60
TIMEOUT = 60.0


def catalogue(
    api: str, wnids: list[str], per_class: int, user_agent: str = USER_AGENT
) -> list[tuple[str, SearchResult]]:
    """(wnid, search result) for each candidate the host at ``api`` lists, class by class."""
    url = api.rstrip("/") + "/demo/catalogue"
    request = urllib.request.Request(
        url,
        data=json.dumps({"wnids": wnids, "per_class": per_class}).encode(),
        headers={"Content-Type": "application/json", "User-Agent": user_agent},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            listed = json.load(response)["candidates"]
    except urllib.error.HTTPError as e:
        raise PipelineError(f"demo: {url} answered HTTP {e.code}: {e.read().decode(errors='replace')[:200]}") from None
    except (urllib.error.URLError, OSError) as e:
        raise PipelineError(
            f"demo: no demo image host answers at {api} ({getattr(e, 'reason', e)}): `make demo` starts one; "
            f"or run `python -m pipeline.imagehost --port PORT` and give API=http://127.0.0.1:PORT"
        ) from None
    except (ValueError, KeyError, TypeError):
        raise PipelineError(f"demo: {url} is not a demo image host's catalogue") from None
    base = api.rstrip("/")
    return [(item["wnid"], _search_result(base, item)) for item in listed]


def _search_result(base: str, item: dict) -> SearchResult:
    return SearchResult(
        base + item["path"],
        source_id=item["kind"],
        title=item["title"],
        creator=item["creator"],
        license=item["license"],
    )
