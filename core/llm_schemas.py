"""The LLM endpoints: what ``MAOS_LLM_ENDPOINTS`` lists, and how each one is reported.

``MAOS_LLM_ENDPOINTS`` names the LLM servers the gateways spread requests over, with the requests
each runs at once (its slots), in either form:

- compact: ``http://gpu1:11434=4,http://gpu2:11434=2`` (a URL without ``=N`` gets ``MAOS_LLM_SLOTS``);
- JSON: ``[{"url": "http://gpu1:11434", "slots": 4}, {"url": "http://gpu2:11434", "slots": 2}]``.

Empty or ``none``: no list.
Without a list (the default): the one server of ``llm_base_url`` (or the provider's usual address) with
``llm_slots``. Every endpoint serves the same provider and models.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

URL_PATTERN = r"^https?://[^\s,=]+$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LLMEndpoint(_Model):
    """One LLM server and how many requests it runs at once."""

    url: str = Field(max_length=500, pattern=URL_PATTERN, description="Server base URL.")
    slots: int = Field(ge=1, le=100_000, description="Requests the server runs at once.")


class LLMEndpointView(_Model):
    """One endpoint as the gateways see it now (summed over the gateway replicas)."""

    url: str = Field(description="Server base URL (redacted: no credentials, no query).")
    slots: int = Field(description="Requests it runs at once (all gateways together).")
    in_flight: int = Field(description="Requests at it now.")
    up: bool = Field(description="It answered its last request or health check.")
    last_error: str | None = Field(None, description="Why it was last taken out, if it was.")
    model: str | None = Field(None, description="The worker model it serves, when it listed it.")


def parse_endpoints(text: str, default_slots: int) -> list[LLMEndpoint]:
    """The endpoints ``text`` lists (see the module's doc for the forms); ``[]`` for blank text.
    Raises ValueError naming what is wrong."""
    text = text.strip()
    if not text or text.lower() == "none":
        return []
    try:
        if text.startswith("["):
            raw = json.loads(text)
            if not isinstance(raw, list):
                raise ValueError("a JSON list of {url, slots} objects is expected")
            found = [LLMEndpoint.model_validate({"slots": default_slots, **item} if isinstance(item, dict) else item)
                     for item in raw]
        else:
            found = []
            for part in (p.strip() for p in text.split(",")):
                if not part:
                    continue
                url, sep, slots = part.rpartition("=") if "=" in part else (part, "", "")
                found.append(LLMEndpoint(url=url.strip() if sep else part,
                                         slots=int(slots) if sep else default_slots))
    except json.JSONDecodeError as exc:
        raise ValueError(f"llm_endpoints: not valid JSON ({exc.msg})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"llm_endpoints: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"llm_endpoints: expected url=slots,url=slots or a JSON list ({exc})") from None
    urls = [e.url.rstrip("/") for e in found]
    if len(set(urls)) != len(urls):
        raise ValueError("llm_endpoints: a URL is listed twice")
    return [e.model_copy(update={"url": u}) for e, u in zip(found, urls, strict=True)]


def format_endpoints(endpoints: list[LLMEndpoint]) -> str:
    """The compact form of ``endpoints`` (what the Settings page shows)."""
    return ",".join(f"{e.url}={e.slots}" for e in endpoints)


def _checked(text: str) -> str:
    parse_endpoints(text, 1)
    return text.strip()


EndpointsText = Annotated[str, AfterValidator(_checked)]
"""An endpoint list as text, checked (what the Settings page edits)."""
