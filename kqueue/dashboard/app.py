"""The dashboard's web app (Starlette): pages, actions, live updates and JSON endpoints.

Pages render Jinja2 templates with autoescaping on, so every value a job supplied (arguments,
errors, tracebacks, class names) is HTML-escaped; the browser code sets text, never HTML.
Backend reads are blocking calls and run on Starlette's thread pool. Nothing from a request is
unpickled or imported: job ids are strings, forms are URL-encoded fields checked against the
config's rules, and the twin runs in a child process (``planner``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from kqueue.api.handle import JobHandle
from kqueue.backends import redact_url
from kqueue.dashboard import planner
from kqueue.dashboard.fleet import FleetView
from kqueue.dashboard.security import COOKIE, FormError, Guard, check_csrf, new_csrf_token, same
from kqueue.errors import ConfigError, JobCancelled, JobFailed, KQueueError
from kqueue.policy.config import Config
from kqueue.policy.status import JobState

HERE = Path(__file__).parent
#: Seconds between two live updates of an open page.
LIVE_INTERVAL_S = 2.0
#: How long the Plan page's prediction for the running fleet is reused, seconds.
PLAN_CACHE_S = 30.0
#: Longest job id looked up.
MAX_JOB_ID = 200


@dataclass
class Settings:
    """What one dashboard serves, and how."""

    backend_url: str
    token: str | None = None
    loopback_only: bool = True
    #: The fleet's settings for the twin; None: what the live workers publish.
    config: Config | None = None
    host_profile: str | None = None
    wait_slo_s: dict[str, float] = field(default_factory=dict)
    default_slo_s: float = 60.0
    #: The trace window the twin runs on, seconds.
    plan_window_s: float = 3600.0


class Dashboard:
    """The app's state: the backend, the fleet view, the CSRF token and the last prediction."""

    def __init__(self, settings: Settings, backend):
        self.settings, self.backend = settings, backend
        self.fleet = FleetView(backend, settings.wait_slo_s, settings.default_slo_s)
        self.csrf = new_csrf_token()
        self.safe_url = redact_url(settings.backend_url)
        self._plan: tuple[float, planner.Prediction] | None = None
        self._plan_lock = asyncio.Lock()
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,  # every template, whatever its name
            undefined=jinja2.StrictUndefined,
        )
        env.filters["num"] = _num
        env.filters["when"] = _when
        self.templates = Jinja2Templates(env=env)

    def page(self, request: Request, name: str, status_code: int = 200, **context) -> Response:
        """Render template ``name`` with the context every page has."""
        context = {"csrf": self.csrf, "backend": self.safe_url, "page": name, **context}
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)

    def config(self) -> Config:
        """The config the twin runs for the live fleet."""
        return planner.fleet_config(self.fleet.snapshot().workers, self.settings.config)

    async def fleet_prediction(self) -> planner.Prediction:
        """The twin on the last window with the fleet's config (reused for ``PLAN_CACHE_S``
        while the config stays the same)."""
        async with self._plan_lock:
            config = await run_in_threadpool(self.config)
            stale = self._plan is None or time.monotonic() - self._plan[0] > PLAN_CACHE_S
            if stale or self._plan[1].config != config:
                prediction = await self.predict(config)
                self._plan = (time.monotonic(), prediction)
            return self._plan[1]

    async def predict(self, config: Config) -> planner.Prediction:
        """The twin on the last window with ``config``, in a child process."""
        window_s = self.settings.plan_window_s
        return await planner.predict(self.backend, config, window_s, self.settings.host_profile)


# --- pages ------------------------------------------------------------------------------------


async def overview(request: Request) -> Response:
    dash = request.app.state.dash
    data = await run_in_threadpool(dash.fleet.overview)
    return dash.page(request, "overview.html", data=data)


async def classes(request: Request) -> Response:
    dash = request.app.state.dash
    return dash.page(request, "classes.html", classes=await run_in_threadpool(dash.fleet.classes))


async def dead(request: Request) -> Response:
    dash = request.app.state.dash
    letters = await run_in_threadpool(dash.fleet.dead)
    counts = (await run_in_threadpool(dash.fleet.snapshot)).counts
    total = sum(c.get("dead", 0) for c in counts.values())
    done = request.query_params.get("done", "")[:100]
    return dash.page(request, "dead.html", letters=letters, total=total, done=done)


async def job(request: Request) -> Response:
    dash = request.app.state.dash
    job_id = request.query_params.get("id", "").strip()[:MAX_JOB_ID]
    found = await run_in_threadpool(job_info, dash.backend, job_id) if job_id else None
    return dash.page(request, "job.html", job_id=job_id, found=found)


async def plan(request: Request) -> Response:
    dash = request.app.state.dash
    try:
        prediction = await dash.fleet_prediction()
    except KQueueError as exc:
        return dash.page(request, "plan.html", error=str(exc), fleet=None, what_if=None, form={})
    return await _plan_page(request, prediction, None, {})


async def plan_what_if(request: Request) -> Response:
    dash = request.app.state.dash
    form = await _csrf_form(request)
    if isinstance(form, Response):
        return form
    try:
        fleet = await dash.fleet_prediction()
        what_if = await dash.predict(planner.what_if(fleet.config, form))
    except ConfigError as exc:
        return dash.page(request, "plan.html", 400, error=str(exc), fleet=None, what_if=None,
                         form=form)  # fmt: skip
    except KQueueError as exc:
        return dash.page(request, "plan.html", error=str(exc), fleet=None, what_if=None, form=form)
    return await _plan_page(request, fleet, what_if, form)


async def _plan_page(request: Request, fleet, what_if, form: dict) -> Response:
    dash = request.app.state.dash
    await run_in_threadpool(dash.fleet.snapshot)
    live = planner.live_figures(dash.fleet.window, dash.fleet.peak_memory_mb)
    changed = {k: v for k, v in form.items() if k in planner.WHAT_IF_SETTINGS and v.strip()}
    return dash.page(
        request, "plan.html", error="", live=live, fleet=fleet, what_if=what_if, form=form,
        fleet_figures=planner.predicted_figures(fleet.result),
        what_if_figures=planner.predicted_figures(what_if.result) if what_if else None,
        settings=planner.WHAT_IF_SETTINGS, download=changed,
    )  # fmt: skip


async def plan_toml(request: Request) -> Response:
    dash = request.app.state.dash
    base = await run_in_threadpool(dash.config)
    try:
        text = planner.toml_from_query(base, dict(request.query_params))
    except ConfigError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    headers = {"content-disposition": 'attachment; filename="kqueue.toml"'}
    return Response(text, media_type="application/toml", headers=headers)


# --- actions ----------------------------------------------------------------------------------


async def _csrf_form(request: Request) -> dict[str, str] | Response:
    """The POST's fields, or the 400/403 response that refuses it."""
    try:
        form = await check_csrf(request, request.app.state.dash.csrf)
    except FormError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    if form is None:
        return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
    return form


async def dead_retry(request: Request) -> Response:
    form = await _csrf_form(request)
    if isinstance(form, Response):
        return form
    backend = request.app.state.dash.backend
    if form.get("all") == "1":
        n = await run_in_threadpool(backend.requeue_dead, None)
    else:
        n = await run_in_threadpool(backend.requeue_dead, [form.get("job_id", "")[:MAX_JOB_ID]])
    return _after_action(request, f"retried {n}")


async def dead_delete(request: Request) -> Response:
    form = await _csrf_form(request)
    if isinstance(form, Response):
        return form
    job_id = form.get("job_id", "")[:MAX_JOB_ID]
    n = await run_in_threadpool(request.app.state.dash.backend.delete_dead, [job_id])
    return _after_action(request, f"deleted {n}")


def _after_action(request: Request, done: str) -> Response:
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"done": done})
    return RedirectResponse(f"/dead?done={done.replace(' ', '+')}", status_code=303)


async def login_form(request: Request) -> Response:
    return request.app.state.dash.page(request, "login.html", error="")


async def login(request: Request) -> Response:
    dash = request.app.state.dash
    try:
        body = await request.body()
        from kqueue.dashboard.security import parse_form

        token = parse_form(body, request.headers.get("content-type", "")).get("token", "")
    except FormError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    if dash.settings.token is None or not same(token, dash.settings.token):
        return dash.page(request, "login.html", 401, error="wrong token")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
    return response


# --- live updates and JSON --------------------------------------------------------------------


async def events(request: Request) -> Response:
    """Server-sent events: the overview's data every ``LIVE_INTERVAL_S``."""
    dash = request.app.state.dash

    async def stream():
        while not await request.is_disconnected():
            data = await run_in_threadpool(dash.fleet.overview)
            yield f"data: {json.dumps(_json_safe(data))}\n\n"
            await asyncio.sleep(LIVE_INTERVAL_S)

    return StreamingResponse(stream(), media_type="text/event-stream")


async def healthz(request: Request) -> Response:
    snap = await run_in_threadpool(request.app.state.dash.fleet.snapshot)
    ok = not snap.error
    return JSONResponse({"ok": ok, "error": snap.error}, status_code=200 if ok else 503)


async def api_overview(request: Request) -> Response:
    data = await run_in_threadpool(request.app.state.dash.fleet.overview)
    return JSONResponse(_json_safe(data))


async def api_classes(request: Request) -> Response:
    data = await run_in_threadpool(request.app.state.dash.fleet.classes)
    return JSONResponse(_json_safe(data))


async def api_dead(request: Request) -> Response:
    data = await run_in_threadpool(request.app.state.dash.fleet.dead)
    return JSONResponse(_json_safe(data))


async def api_job(request: Request) -> Response:
    job_id = request.path_params["job_id"][:MAX_JOB_ID]
    found = await run_in_threadpool(job_info, request.app.state.dash.backend, job_id)
    return JSONResponse(_json_safe(found), status_code=404 if found["state"] == "unknown" else 200)


async def api_plan(request: Request) -> Response:
    """The twin's prediction for the running fleet, with the settings and rows it ran on."""
    dash = request.app.state.dash
    try:
        prediction = await dash.fleet_prediction()
    except KQueueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    await run_in_threadpool(dash.fleet.snapshot)
    live = planner.live_figures(dash.fleet.window, dash.fleet.peak_memory_mb)
    body = {
        "predicted": prediction.result,
        "live": live,
        "rows": prediction.rows,
        "window_s": prediction.window_s,
        "config_toml": prediction.config.to_toml(),
    }
    return JSONResponse(_json_safe(body))


def job_info(backend, job_id: str) -> dict:
    """What a job handle says of ``job_id``: state, attempts, times, result or error."""
    handle = JobHandle(backend, job_id)
    info = handle.info().to_dict()
    info["state"] = str(info["state"].value if hasattr(info["state"], "value") else info["state"])
    info["result"] = None
    if info["state"] == JobState.DONE.value:
        with contextlib.suppress(JobFailed, JobCancelled, KQueueError, TimeoutError):
            info["result"] = json.dumps(handle.result(timeout_s=0))[:10_000]
    return info


def _json_safe(value):
    """``value`` with NaN and infinities as None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items() if k != "worker_config_toml"}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _num(value, digits: int = 1) -> str:
    """A number for a page (``-`` when unknown)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _when(epoch_s) -> str:
    if not isinstance(epoch_s, int | float) or not math.isfinite(epoch_s) or epoch_s <= 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch_s))


def create_app(settings: Settings, backend=None) -> Starlette:
    """The dashboard as an ASGI app for ``settings`` (opens the backend unless given)."""
    from kqueue.backends import open_backend

    dash = Dashboard(settings, backend or open_backend(settings.backend_url))
    routes = [
        Route("/", overview),
        Route("/classes", classes),
        Route("/dead", dead),
        Route("/dead/retry", dead_retry, methods=["POST"]),
        Route("/dead/delete", dead_delete, methods=["POST"]),
        Route("/job", job),
        Route("/plan", plan),
        Route("/plan", plan_what_if, methods=["POST"]),
        Route("/plan/kqueue.toml", plan_toml),
        Route("/login", login_form),
        Route("/login", login, methods=["POST"]),
        Route("/events", events),
        Route("/healthz", healthz),
        Route("/api/overview", api_overview),
        Route("/api/classes", api_classes),
        Route("/api/dead", api_dead),
        Route("/api/jobs/{job_id:path}", api_job),
        Route("/api/plan", api_plan),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.dash = dash
    return Guard(app, settings.token, settings.loopback_only)
