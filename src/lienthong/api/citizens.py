"""``GET /v1/citizens/{id}``: e-form prefill from the population database (see lienthong.citizens)."""

# No ``from __future__ import annotations``: FastAPI reads the dependency annotations at run time.
import logging
from typing import Annotated
from urllib.parse import unquote

import orjson
from fastapi import APIRouter, Depends, Header, Query
from starlette.responses import Response

from lienthong.api.auth import BearerAuth, Caller
from lienthong.api.errors import UNAUTHORIZED, answer, error_response, refusals
from lienthong.api.schemas import Citizen
from lienthong.citizens.prefill import Prefill, PrefillRefused, PrefillRequest
from lienthong.errors import (
    CitizenMismatch,
    CitizenNotFound,
    MappingError,
    PopulationRefused,
    PopulationUnavailable,
    StoreError,
)

_EXAMPLE = {
    "request_id": "lookup-7f3a9c",
    "form": "default",
    "fields": {"HoVaTen": "Nguyễn Thị Thu Hà", "NgaySinh": "15/01/1990", "SoDinhDanh": "046090000123"},
}
_ANSWERS = {
    200: answer(Citizen, _EXAMPLE, "The form's fields for this citizen, and no others"),
    **refusals(
        {
            400: "No official (`x-official-id`) or no purpose (`x-purpose`) given",
            401: UNAUTHORIZED,
            404: "No such citizen (`citizen_not_found`) or no such form (`unknown_form`)",
            409: "The name or birth date given differ from the record (`citizen_mismatch`)",
            422: "An id, header or birth date that cannot be right (`invalid_id`, `invalid_birth_date`…)",
            502: "The population database refused the look-up, or the form's mapping failed",
            503: "The population database is unavailable, or the look-up could not be audited; try again",
        }
    ),
}

log = logging.getLogger("lienthong.api.citizens")


def citizens_router(*, prefill: Prefill, auth: BearerAuth) -> APIRouter:
    router = APIRouter()
    Authenticated = Annotated[Caller, Depends(auth)]

    @router.get("/v1/citizens/{id_number}", responses=_ANSWERS)
    async def get_citizen(
        id_number: str,
        *,
        caller: Authenticated,
        x_official_id: Annotated[str, Header(description="MaCanBo: the official who asks")] = "",
        x_purpose: Annotated[
            str, Header(description="Why: the procedure or dossier served, percent-encoded UTF-8")
        ] = "",
        form: Annotated[str, Query(description="Which e-form's fields (config citizens.forms)")] = "default",
        name: Annotated[str | None, Query(description="Full name to check against the record")] = None,
        birth_date: Annotated[str | None, Query(description="dd/MM/yyyy or yyyyMMdd to check")] = None,
    ) -> Response:
        """The e-form fields for one citizen; every request is audited."""
        # HTTP headers carry Latin-1 only: a Vietnamese purpose arrives percent-encoded.
        purpose = unquote(x_purpose)
        request = PrefillRequest(id_number, caller.name, x_official_id, purpose, form, name, birth_date)
        try:
            found = await prefill.lookup(request)
        except PrefillRefused as exc:
            return error_response(exc.status, exc.code, exc.message, path=exc.path)
        except CitizenNotFound as exc:
            return error_response(404, "citizen_not_found", exc.message, path="id")
        except CitizenMismatch as exc:
            return error_response(409, "citizen_mismatch", exc.message, path=",".join(exc.fields))
        # The service's own words stay out of the answer: a fault's text, or the start of an answer that is
        # not XML, can name this citizen or another (found in review). They go to the node's log, where
        # the redacting filter masks id numbers, for the operators to read.
        except PopulationUnavailable as exc:
            log.warning("citizen look-up: the population service is unavailable: %s", exc.message)
            headers = {"retry-after": str(int(exc.retry_after_s))} if exc.retry_after_s else None
            message = "the population service is unavailable; try again later (the node's log says why)"
            return error_response(503, "population_unavailable", message, headers=headers)
        except PopulationRefused as exc:
            log.warning("citizen look-up: the population service refused the request: %s", exc.message)
            message = "the population service refused the request (the node's log says why)"
            return error_response(502, "population_refused", message)
        except MappingError as exc:
            return error_response(502, "form_mapping_failed", str(exc))
        except StoreError:
            return error_response(503, "audit_unavailable", "the look-up could not be audited; try again")
        body = {"request_id": found.request_id, "form": found.form, "fields": found.fields}
        return Response(orjson.dumps(body), media_type="application/json")

    return router
