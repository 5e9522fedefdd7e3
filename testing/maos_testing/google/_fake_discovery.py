"""Routes of the fake Google server, read from the discovery documents the client library ships.

Each method is reachable at ``servicePath + path`` (an ``api_endpoint`` that names the service
path, or Google's own layout) and at the bare ``path`` (``build(..., client_options=
{"api_endpoint": root})`` replaces the whole base URL, service path included); its media upload
paths come from ``mediaUpload.protocols``. Literal segments win over parameters.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import googleapiclient.discovery_cache

from maos_testing.google._fake_wire import Json

SERVICES = (("gmail", "v1"), ("calendar", "v3"), ("drive", "v3"))
_PARAM = re.compile(r"\{(\+?)([^}]+)\}")


@dataclass(frozen=True)
class Route:
    method_id: str
    http_method: str
    template: str
    pattern: re.Pattern[str]
    params: tuple[str, ...]
    scopes: frozenset[str]
    upload: bool

    def specificity(self) -> tuple[int, int, int]:
        """Sort key: fewer parameters, no ``{+x}``, longer templates first."""
        return len(self.params), int("{+" in self.template), -len(self.template)


def discovery_document(name: str, version: str) -> Json:
    folder = Path(googleapiclient.discovery_cache.__file__).parent / "documents"
    doc: Json = json.loads((folder / f"{name}.{version}.json").read_text(encoding="utf-8"))
    return doc


def _compile(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    pattern, names, last = "", [], 0
    for match in _PARAM.finditer(template):
        pattern += re.escape(template[last:match.start()])
        pattern += "(.+)" if match.group(1) else "([^/]+)"
        names.append(match.group(2))
        last = match.end()
    pattern += re.escape(template[last:])
    return re.compile(pattern + r"\Z"), tuple(names)


def _methods(resources: Json) -> list[Json]:
    found: list[Json] = []
    for resource in resources.values():
        found.extend(resource.get("methods", {}).values())
        found.extend(_methods(resource.get("resources", {})))
    return found


class Router:
    """Matches (HTTP method, path below the root) to a discovery method and its path parameters."""

    def __init__(self, documents: list[Json]) -> None:
        routes: list[Route] = []
        seen: set[tuple[str, str]] = set()
        self.method_ids: set[str] = set()
        for doc in documents:
            service_path = doc.get("servicePath", "")
            for method in _methods(doc.get("resources", {})):
                self.method_ids.add(method["id"])
                templates = [(service_path + method["path"], False)]
                if service_path:
                    templates.append((method["path"], False))
                protocols = method.get("mediaUpload", {}).get("protocols", {})
                templates += [(proto["path"].lstrip("/"), True) for proto in protocols.values()]
                for template, upload in templates:
                    if (method["httpMethod"], template) in seen:
                        continue  # a bare path two services share: the first one keeps it
                    seen.add((method["httpMethod"], template))
                    pattern, params = _compile(template)
                    routes.append(Route(method["id"], method["httpMethod"], template, pattern, params,
                                        frozenset(method.get("scopes", [])), upload))
        routes.sort(key=Route.specificity)
        self._routes: dict[str, list[Route]] = {}
        for route in routes:
            self._routes.setdefault(route.http_method, []).append(route)

    def match(self, http_method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """``path`` still percent-encoded, without the leading slash."""
        for route in self._routes.get(http_method, []):
            found = route.pattern.match(path)
            if found is not None:
                return route, {name: unquote(value) for name, value in zip(route.params, found.groups(), strict=True)}
        return None


def google_router() -> Router:
    return Router([discovery_document(name, version) for name, version in SERVICES])
