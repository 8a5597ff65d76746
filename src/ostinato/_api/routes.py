"""The HTTP API: API Gateway HTTP API (payload 2.0) -> Lambda `api` -> `Client`.

Routes are DESIGN.md §2's. Requests are validated by Powertools against the pydantic models of
`models` (which also make `/openapi.json`, and hold every rule the routes enforce); every error
answers `{"error": {"code", "message"}}`, and no input gets a 5xx. Oversized bodies are refused
before anything else runs, and the client checks types, payload sizes and conflicts before it
writes, so a refused request leaves nothing behind.

Paths arrive percent-decoded, as API Gateway HTTP APIs deliver `rawPath`; a path parameter may
hold any character but `/` (a workflow id `a:b?c#d%e` is one). Powertools matches parameters
against a narrower class, so `handle` encodes each segment again and the resolver hands every
route its parameters decoded (`_Resolver`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable
from re import Match
from typing import Annotated, Any
from urllib.parse import quote, unquote

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import BaseModel

from .._client import schedules as _schedules
from .._client.client import RUN_ID, WORKFLOW_ID, Client
from .._client.schedules import (
    SCHEDULE_NAME,
    InvalidScheduleError,
    ScheduleAlreadyExistsError,
    ScheduleNotFoundError,
)
from .._core import converter
from .._core.errors import (
    ActivityError,
    ApplicationError,
    CallbackClosedError,
    CallbackError,
    CallbackNotFoundError,
    ChildWorkflowError,
    InvalidPageTokenError,
    PayloadTooLargeError,
    QueryRejectedError,
    UnknownTypeError,
    UpdateRejectedError,
    WorkflowAlreadyStartedError,
    WorkflowClosedError,
    WorkflowNotFoundError,
)
from .._core.history import to_document
from .._core.serde import dumps
from .models import (
    ADDRESSING,
    CALLBACK_TOKEN_PATTERN,
    HANDLER_NAME_PATTERN,
    NEXT_TOKEN_PATTERN,
    RUN_ID_PATTERN,
    WORKFLOW_ID_PATTERN,
    ArgsRequest,
    CallbackRequest,
    CreateScheduleRequest,
    ErrorResponse,
    HistoryResponse,
    ListResponse,
    ListSchedulesResponse,
    PutEventsRequest,
    PutEventsResponse,
    ReasonRequest,
    ResultResponse,
    ScheduleResponse,
    StartWorkflowRequest,
    StartWorkflowResponse,
    Status,
    UpdateWithStartRequest,
    UpdateWithStartResponse,
    WorkflowResponse,
)
from .paging import decode_token, encode_token, parse_time

#: Largest request body accepted. Lambda takes a synchronous event of at most 6 MB, and API
#: Gateway may send the body base64 (a third larger); larger payloads (up to 50 MiB, kept in
#: the payload bucket) go through `ostinato.Client` instead.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: Largest response body: a Lambda response is at most 6 MB (a larger one would be a 502).
MAX_RESPONSE_BYTES = 5_500_000
#: How long an update request waits for the handler's result (API Gateway gives up at 29 s).
UPDATE_TIMEOUT = 25.0

logger = Logger(service="ostinato")


class _Resolver(APIGatewayHttpResolver):
    """Routes on the path `handle` encoded again; hands the routes their parameters decoded."""

    def _convert_matches_into_route_keys(self, match: Match[str]) -> dict[str, str]:
        return {name: unquote(value) for name, value in match.groupdict().items()}


app = _Resolver(enable_validation=True)

# -- path parameters (the routes get them decoded; see the module docstring) --------------------
# An identifier outside its documented pattern names nothing: 404, as for any unknown one.
WorkflowId = Annotated[str, Path(max_length=128,  # longer: 400 (and no oversized store key)
                                 json_schema_extra={"pattern": WORKFLOW_ID_PATTERN},
                                 description=f"the workflow id. {ADDRESSING}")]
HandlerName = Annotated[str, Path(json_schema_extra={"pattern": HANDLER_NAME_PATTERN},
                                  description=f"the handler's name. {ADDRESSING}")]
CallbackToken = Annotated[str, Path(json_schema_extra={"pattern": CALLBACK_TOKEN_PATTERN},
                                    description="the token `ctx.create_callback()` handed out")]
ScheduleName = Annotated[str, Path(json_schema_extra={"pattern": f"^{SCHEDULE_NAME.pattern}$"})]


def _date_time(schema: dict[str, Any]) -> None:
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "string":
            branch["format"] = "date-time"


#: Parsed by `_time`, not pydantic, which takes more than `format: date-time` allows.
StartTime = Annotated[str | None, Query(json_schema_extra=_date_time,
                                        description="RFC 3339 date-time, inclusive")]


def _responses(ok: int, model: type[BaseModel] | None, *errors: int) -> dict[int, Any]:
    """The documented answers of a route: `ok`, the `errors` it can give, and 500."""
    described: dict[int, Any] = {ok: {"description": _STATUS_TEXT[ok]}}
    if model is not None:
        described[ok]["content"] = {"application/json": {"model": model}}
    for status in (*errors, 500):
        described[status] = {"description": _STATUS_TEXT[status],
                             "content": {"application/json": {"model": ErrorResponse}}}
    return described


_STATUS_TEXT = {200: "OK", 201: "created", 202: "accepted", 204: "deleted",
                400: "malformed request (body, parameters or path), or an update its "
                     "validator rejected",
                404: "unknown workflow, workflow type, schedule or callback",
                409: "conflict: already running or closed, the schedule exists, or the "
                     "callback is already settled",
                413: "payload too large", 422: "the update handler failed",
                500: "internal error (the answer names only the request id of the log line)",
                504: "the update did not finish in time (it may still complete)"}


# -- errors -------------------------------------------------------------------------------
def error_response(status: int, code: str, message: str) -> Response:
    return _json(status, {"error": {"code": code, "message": message}})


def _json(status: int, body: Any) -> Response:
    return Response(status_code=status, content_type="application/json", body=body)


class UpdateTimeout(Exception):
    """The update's result did not come within `UPDATE_TIMEOUT` (504)."""


class UpdateFailed(Exception):
    """The update's handler raised (422)."""


#: Domain error -> (HTTP status, error code).
ERRORS: dict[type[Exception], tuple[int, str]] = {
    WorkflowNotFoundError: (404, "workflow_not_found"),
    UnknownTypeError: (404, "unknown_workflow_type"),
    WorkflowAlreadyStartedError: (409, "workflow_already_started"),
    WorkflowClosedError: (409, "workflow_closed"),
    PayloadTooLargeError: (413, "payload_too_large"),
    QueryRejectedError: (400, "query_rejected"),
    UpdateRejectedError: (400, "update_rejected"),
    CallbackNotFoundError: (404, "callback_not_found"),
    CallbackClosedError: (409, "callback_closed"),
    UpdateFailed: (422, "update_failed"),
    UpdateTimeout: (504, "update_timeout"),
    InvalidScheduleError: (400, "invalid_schedule"),
    ScheduleNotFoundError: (404, "schedule_not_found"),
    ScheduleAlreadyExistsError: (409, "schedule_already_exists"),
    InvalidPageTokenError: (400, "invalid_page_token"),
}


def _domain_handler(status: int, code: str) -> Callable[[Exception], Response]:
    def handle(exc: Exception) -> Response:
        return error_response(status, code, str(exc))
    return handle


for _exc, (_status, _code) in ERRORS.items():
    app.exception_handler(_exc)(_domain_handler(_status, _code))


@app.exception_handler(RequestValidationError)
def _invalid(exc: RequestValidationError) -> Response:
    problems = exc.errors()
    for problem in problems:  # a schedule the models refused as the client would have
        if isinstance(cause := (problem.get("ctx") or {}).get("error"), InvalidScheduleError):
            return error_response(400, "invalid_schedule", str(cause))
    if any(p.get("type") == "json_invalid" for p in problems):
        detail = next(p for p in problems if p.get("type") == "json_invalid")
        reason = (detail.get("ctx") or {}).get("error", "JSON decode error")
        return error_response(400, "malformed_json", f"request body is not valid JSON: {reason}")
    message = "; ".join(f"{'.'.join(str(part) for part in p.get('loc', ()))}: {p.get('msg')}"
                        for p in problems)
    return error_response(400, "invalid_request", message or "invalid request")


@app.exception_handler(UnicodeDecodeError)
@app.exception_handler(binascii.Error)
def _undecodable(exc: ValueError) -> Response:
    """Powertools could not decode the body: after `_text_body` only a base64 body that is not
    UTF-8 text (or not base64) is left to fail so. Anything else is an internal error."""
    if not app.current_event.get("isBase64Encoded"):
        return _internal(exc)
    return error_response(400, "malformed_json",
                          "request body is not valid JSON: it is not UTF-8 text")


@app.exception_handler(Exception)
def _internal(exc: Exception) -> Response:
    """An unexpected error: logged with its traceback; the answer (public routes too) names
    nothing internal (exception text carries table names and ARNs), only the Lambda request
    id that finds the log line."""
    logger.exception("request failed", exc_info=exc)
    request_id = getattr(getattr(app, "lambda_context", None), "aws_request_id", None)
    where = f" (request id {request_id})" if request_id else ""
    return error_response(500, "internal_error", f"internal error; see the logs{where}")


@app.not_found
def _no_route(_exc: Exception) -> Response:
    event = app.current_event
    return error_response(404, "route_not_found",
                          f"no route for {event.http_method} {unquote(event.path)}")


# -- routes -------------------------------------------------------------------------------
def _client() -> Client:
    """The client of this invocation (handed to `handle` by the Lambda handler)."""
    return app.context["client"]  # type: ignore[no-any-return]


def _accepted() -> Response[ResultResponse]:
    return _json(202, {"result": None})


@app.post("/workflows", summary="Start a workflow",
          responses=_responses(201, StartWorkflowResponse, 400, 404, 409, 413))
def start_workflow(body: Annotated[StartWorkflowRequest, Body()]
                   ) -> Response[StartWorkflowResponse]:
    handle = _client().start_workflow(body.workflow_type, *body.args, id=body.id,
                                      id_conflict_policy=body.id_conflict_policy)
    logger.append_keys(workflow_id=handle.id)
    logger.info("workflow started", extra={"workflow_type": body.workflow_type})
    return _json(201, {"workflow_id": handle.id, "run_id": handle.run_id})


@app.get("/workflows", summary="List workflows, newest first",
         responses=_responses(200, ListResponse, 400))
def list_workflows(
    status: Annotated[Status | None, Query()] = None,
    workflow_type: Annotated[str | None, Query(min_length=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    next_token: Annotated[str | None, Query(
        pattern=NEXT_TOKEN_PATTERN, max_length=4096,
        description="the `next_token` of the previous page (opaque; another is refused)",
    )] = None,
    started_after: StartTime = None,
    started_before: StartTime = None,
) -> Response[ListResponse]:
    start_key = decode_token(next_token) if next_token else None
    page, last_key = _client().list_page(status, workflow_type, limit, start_key,
                                         parse_time("started_after", started_after),
                                         parse_time("started_before", started_before))
    workflows = [description.to_dict() for description in page]
    return _json(200, {"workflows": workflows, "next_token": encode_token(last_key)})


@app.get("/workflows/<workflow_id>", summary="Describe a workflow",
         responses=_responses(200, WorkflowResponse, 400, 404))
def describe_workflow(workflow_id: WorkflowId) -> Response[WorkflowResponse]:
    logger.append_keys(workflow_id=workflow_id)
    return _json(200, _client().get_workflow_handle(workflow_id).describe().to_dict())


@app.get("/workflows/<workflow_id>/history",
         summary="A run's history (a replayable document), in pages of about 1 MB",
         responses=_responses(200, HistoryResponse, 400, 404))
def workflow_history(workflow_id: WorkflowId,
                     run_id: Annotated[str | None, Query(
                         json_schema_extra={"pattern": RUN_ID_PATTERN})] = None,
                     next_token: Annotated[str | None, Query(
                         pattern=NEXT_TOKEN_PATTERN, max_length=4096,
                         description="the `next_token` of the previous page (opaque)")] = None,
                     ) -> Response[HistoryResponse]:
    """One page of the run's history; concatenating the pages' `events` and `tasks` gives
    the whole document (`ostinato workflow history` does). A Lambda response is at most 6 MB,
    so a long run is never answered in one piece."""
    logger.append_keys(workflow_id=workflow_id)
    if run_id is not None and not RUN_ID.fullmatch(run_id):
        raise WorkflowNotFoundError(f"{workflow_id} (run {run_id})")
    after = 0
    if next_token:
        page = decode_token(next_token)
        token_after, token_run = page.get("after"), page.get("run_id")
        if not (isinstance(token_after, int) and token_after > 0
                and isinstance(token_run, str) and RUN_ID.fullmatch(token_run)
                and run_id in (None, token_run)):
            raise InvalidPageTokenError("not a page token of this history")
        after, run_id = token_after, token_run
    client = _client()
    rid, batches, following = client.history_page(workflow_id, run_id, after)
    if run_id is not None and not batches and not after:
        raise WorkflowNotFoundError(f"{workflow_id} (run {run_id})")
    document = to_document(workflow_id, rid, batches)
    document["next_token"] = (None if following is None
                              else encode_token({"run_id": rid, "after": following}))
    return _json(200, document)


@app.post("/workflows/<workflow_id>/signals/<name>", summary="Signal a workflow",
          responses=_responses(202, ResultResponse, 400, 404, 409, 413))
def signal_workflow(workflow_id: WorkflowId, name: HandlerName,
                    body: Annotated[ArgsRequest | None, Body()] = None,
                    ) -> Response[ResultResponse]:
    logger.append_keys(workflow_id=workflow_id)
    _client().get_workflow_handle(workflow_id).signal(name, *(body.args if body else []))
    logger.info("signal sent", extra={"signal": name})
    return _accepted()


@app.post("/workflows/<workflow_id>/queries/<name>", summary="Query a workflow",
          responses=_responses(200, ResultResponse, 400, 404, 413))
def query_workflow(workflow_id: WorkflowId, name: HandlerName,
                   body: Annotated[ArgsRequest | None, Body()] = None,
                   ) -> Response[ResultResponse]:
    logger.append_keys(workflow_id=workflow_id)
    result = _client().get_workflow_handle(workflow_id).query(name, *(body.args if body else []))
    return _json(200, {"result": converter.encode(result, f"result of query {name!r}")})


@app.post("/workflows/<workflow_id>/cancel", summary="Request cancellation",
          responses=_responses(202, ResultResponse, 400, 404, 409, 413))
def cancel_workflow(workflow_id: WorkflowId,
                    body: Annotated[ReasonRequest | None, Body()] = None,
                    ) -> Response[ResultResponse]:
    logger.append_keys(workflow_id=workflow_id)
    _client().get_workflow_handle(workflow_id).cancel(body.reason if body else None)
    logger.info("cancel requested")
    return _accepted()


@app.post("/workflows/<workflow_id>/terminate", summary="Terminate now",
          responses=_responses(202, ResultResponse, 400, 404, 409, 413))
def terminate_workflow(workflow_id: WorkflowId,
                       body: Annotated[ReasonRequest | None, Body()] = None,
                    ) -> Response[ResultResponse]:
    logger.append_keys(workflow_id=workflow_id)
    _client().get_workflow_handle(workflow_id).terminate(body.reason if body else None)
    logger.info("terminated")
    return _accepted()


@app.post("/workflows/<workflow_id>/updates/<name>",
          summary="Update a workflow: validated, recorded, run; answers the handler's result",
          responses=_responses(200, ResultResponse, 400, 404, 409, 413, 422, 504))
def update_workflow(workflow_id: WorkflowId, name: HandlerName,
                    body: Annotated[ArgsRequest | None, Body()] = None,
                    ) -> Response[ResultResponse]:
    logger.append_keys(workflow_id=workflow_id)
    handle = _client().get_workflow_handle(workflow_id)
    result = _updated(workflow_id, name, lambda: handle.update(
        name, *(body.args if body else []), timeout=UPDATE_TIMEOUT))
    return _json(200, {"result": converter.encode(result, f"result of update {name!r}")})


@app.post("/workflows/<workflow_id>/update-with-start",
          summary="Start the workflow (or attach to the running one) and run an update on "
                  "it; answers the run and the handler's result",
          responses=_responses(200, UpdateWithStartResponse, 400, 404, 409, 413, 422, 504))
def update_with_start(workflow_id: WorkflowId, body: Annotated[UpdateWithStartRequest, Body()]
                      ) -> Response[UpdateWithStartResponse]:
    """`Client.update_with_start`: the update follows the start on the workflow's queue and
    runs in its first workflow task. Nothing is written for a request refused before the
    start (400 malformed, 404 unknown type, 409 the id is running and id_conflict_policy is
    fail, 413); a rejected (400), failed (422) or unfinished (504) update leaves the
    workflow started, as in Temporal."""
    logger.append_keys(workflow_id=workflow_id)
    if not WORKFLOW_ID.fullmatch(workflow_id):  # it would name the new run: refuse it
        raise RequestValidationError([{"type": "value_error", "loc": ("path", "workflow_id"),
                                       "msg": f"not a workflow id ({WORKFLOW_ID_PATTERN})"}])
    client = _client()

    def run() -> tuple[Any, Any]:
        try:
            return client.update_with_start(
                body.workflow_type, *body.args, id=workflow_id, update=body.update,
                update_args=body.update_args, id_conflict_policy=body.id_conflict_policy,
                timeout=UPDATE_TIMEOUT)
        except UpdateRejectedError as exc:
            raise UpdateRejectedError(f"{exc} (workflow {workflow_id!r} is started)") from exc

    handle, result = _updated(workflow_id, body.update, run)
    return _json(200, {"workflow_id": handle.id, "run_id": handle.run_id,
                       "result": converter.encode(result, f"result of update {body.update!r}")})


def _updated(workflow_id: str, name: str, run: Callable[[], Any]) -> Any:
    """What `run` (which waits for update `name`) returns, or the API's error for how the
    update ended."""
    try:
        result = run()
    except TimeoutError as exc:
        raise UpdateTimeout(f"update {name!r} of workflow {workflow_id!r} did not finish "
                            f"within {UPDATE_TIMEOUT:g}s ({exc}); it may still complete") from exc
    except (ApplicationError, ActivityError, ChildWorkflowError, CallbackError) as exc:
        logger.info("update failed", extra={"update": name})
        raise UpdateFailed(f"update {name!r} failed: {exc}") from exc
    logger.info("update completed", extra={"update": name})
    return result


@app.post("/callbacks/<token>", summary="Complete, fail or heartbeat a callback",
          responses=_responses(202, ResultResponse, 400, 404, 409, 413))
def complete_callback(token: CallbackToken, body: Annotated[CallbackRequest, Body()]
                      ) -> Response[ResultResponse]:
    client = _client()
    if body.status == "success":
        client.complete_callback(token, body.result)
    elif body.status == "failure":
        assert body.error is not None  # CallbackRequest requires it
        error = body.error if isinstance(body.error, str) else body.error.model_dump()
        client.fail_callback(token, error)
    else:
        client.heartbeat_callback(token)
    logger.info("callback settled" if body.status != "heartbeat" else "callback heartbeat",
                extra={"status": body.status})
    return _accepted()


@app.post("/schedules", summary="Create a recurring schedule (EventBridge Scheduler)",
          responses=_responses(201, ScheduleResponse, 400, 404, 409, 413))
def create_schedule(body: Annotated[CreateScheduleRequest, Body()]
                    ) -> Response[ScheduleResponse]:
    created = _schedules.create_schedule(_client(), body.name, body.workflow_type, *body.args,
                                           cron=body.cron, rate=body.rate,
                                           overlap=body.overlap, timezone=body.timezone)
    logger.info("schedule created", extra={"schedule": body.name,
                                           "expression": created.expression})
    return _json(201, created.to_dict())


@app.get("/schedules", summary="List schedules",
         responses=_responses(200, ListSchedulesResponse))
def list_schedules() -> Response[ListSchedulesResponse]:
    schedules = _schedules.list_schedules(_client())
    return _json(200, {"schedules": [s.to_dict() for s in schedules]})


@app.delete("/schedules/<name>", summary="Delete a schedule (its firings stop)",
            responses=_responses(204, None, 400, 404))
def delete_schedule(name: ScheduleName) -> Response[str]:
    _schedules.delete_schedule(_client(), name)
    logger.info("schedule deleted", extra={"schedule": name})
    return Response(status_code=204, content_type="application/json", body="")


@app.post("/events", summary="Publish events to the default bus (EventBridge PutEvents)",
          responses=_responses(200, PutEventsResponse, 400, 413))
def put_events(body: Annotated[PutEventsRequest, Body()]) -> Response[PutEventsResponse]:
    entries = [entry.model_dump(exclude_none=True) for entry in body.Entries]
    answer = _client().put_events(entries)
    logger.info("events published", extra={"count": len(entries),
                                           "failed": answer["FailedEntryCount"]})
    return _json(200, answer)


@app.get("/openapi.json", include_in_schema=False, enable_validation=False)
def openapi_document() -> Response[str]:
    return Response(status_code=200, content_type="application/json", body=openapi_json())


@functools.cache
def openapi_json() -> str:
    """The OpenAPI document, without Powertools' 422 answers (this API answers 400; its own
    422, a failed update, stays)."""
    doc = json.loads(app.get_openapi_json_schema(
        title="ostinato", version="0.1.0",
        description="Start, signal, query, update, cancel, terminate, describe, list and "
                    "read the history of durable workflows; complete their callbacks; schedule "
                    "them; publish the events that trigger them."))
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "HTTPValidationError" in json.dumps(responses.get("422", {})):
                responses.pop("422")
    schemas = doc.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return json.dumps(doc, separators=(",", ":"))


# -- the Lambda entry point ---------------------------------------------------------------
def body_size(event: dict[str, Any]) -> int:
    """Bytes of the request body as the client sent it."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(body) * 3 // 4 - body[-2:].count("=")
    return len(body.encode())


@logger.inject_lambda_context(clear_state=True)
def handle(event: dict[str, Any], context: Any, client: Client) -> dict[str, Any]:
    """API Gateway HTTP API (payload format 2.0) -> the routes above, served by `client`."""
    size = body_size(event)
    if size > MAX_BODY_BYTES:
        error = {"code": "payload_too_large", "message": f"request body is {size} bytes, "
                 f"over the limit of {MAX_BODY_BYTES} bytes"}
        return {"statusCode": 413, "headers": {"Content-Type": "application/json"},
                "body": dumps({"error": error}), "isBase64Encoded": False}
    app.append_context(client=client)
    answer: dict[str, Any] = app.resolve(_routable(_text_body(_as_json(event))), context)
    if len(answer.get("body") or "") > MAX_RESPONSE_BYTES:
        error = {"code": "payload_too_large", "message": (
            f"the response is over the {MAX_RESPONSE_BYTES} bytes a Lambda response may hold: "
            "read payloads this large with ostinato.Client (Client.from_stack)")}
        answer = {"statusCode": 413, "headers": {"Content-Type": "application/json"},
                  "body": dumps({"error": error}), "isBase64Encoded": False}
    return answer


def _as_json(event: dict[str, Any]) -> dict[str, Any]:
    """This API speaks JSON only: read any body as JSON (`curl -d` says it is a form)."""
    headers = event.get("headers") or {}
    if event.get("body") and not headers.get("content-type", "").startswith("application/json"):
        event = {**event, "headers": {**headers, "content-type": "application/json"}}
    return event


def _text_body(event: dict[str, Any]) -> dict[str, Any]:
    """A base64 body (API Gateway sends one whenever the bytes are not text) that is UTF-8
    text, handed on as text; any other stays base64, and a route reading it answers 400
    (`_undecodable`) while routes without a body never look at it."""
    if not (event.get("isBase64Encoded") and event.get("body")):
        return event
    try:
        text = base64.b64decode(event["body"], validate=True).decode()
    except (binascii.Error, ValueError):
        return event
    return {**event, "body": text, "isBase64Encoded": False}


def _routable(event: dict[str, Any]) -> dict[str, Any]:
    """`rawPath` with each segment percent-encoded again, for Powertools' route patterns."""
    path = event.get("rawPath") or "/"
    encoded = "/".join(quote(segment, safe="") for segment in path.split("/"))
    return event if encoded == path else {**event, "rawPath": encoded}
