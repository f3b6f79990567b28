"""Telemetry with the default dispatcher: spans, metrics, log fields, settings, failures."""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from thorn_core import ImproperlyConfigured, Thorn
from thorn_core import telemetry as telemetry_module
from thorn_core.receiver import ReceivedWebhook, Reply

pytest.importorskip("opentelemetry.sdk", reason="the telemetry tests need opentelemetry-sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, StatusCode

from .._otel import OTel

SECRET = "whsec-telemetry-secret-0123456789"
PAYLOAD_MARK = "payload-marker-7f3a"
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def otel() -> Iterator[OTel]:
    """Fresh SDK providers for one test."""
    providers = OTel()
    yield providers
    providers.shutdown()


@pytest.fixture
def no_complaint_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget when telemetry last complained, so this test sees the first complaint."""
    monkeypatch.setattr(telemetry_module, "_last_complaint", -telemetry_module.COMPLAINT_INTERVAL)


def answering(status: int) -> Callable[[ReceivedWebhook], Reply]:
    return lambda _request: (status, b"answer")


def refused_url() -> str:
    """A private address: the recipient validators refuse it before any connection."""
    return "http://10.20.30.40/hook"


class TestSpans:
    """A send span, and one HTTP client span per attempt as its children."""

    def test_send_span_parents_each_attempt(self, make_app, make_receiver, otel):
        """Two subscribers: one ``thorn.send`` span with the count, two POST spans under it."""
        first, second = make_receiver(), make_receiver()
        app = make_app(
            {"THORN_SUBSCRIBERS": {"order.paid": [first.url("/a"), second.url("/b")]}}
            | otel.settings()
        )

        result = app.event("order.paid").send({"id": 1})

        (send,) = otel.finished("thorn.send")
        attempts = otel.finished("POST")
        assert send.attributes["thorn.event"] == "order.paid"
        assert send.attributes["thorn.subscribers"] == 2
        assert send.attributes["thorn.dispatcher"] == "default"
        assert len(attempts) == 2
        ids = {d.id for d in result.deliveries}
        for span in attempts:
            assert span.kind is SpanKind.CLIENT
            assert span.parent.span_id == send.context.span_id
            assert span.context.trace_id == send.context.trace_id
            assert span.attributes["http.request.method"] == "POST"
            assert span.attributes["http.response.status_code"] == 200
            assert span.attributes["server.address"] == "127.0.0.1"
            assert span.attributes["thorn.delivery.attempt"] == 1
            assert span.attributes["thorn.delivery.outcome"] == "success"
            assert span.attributes["thorn.delivery.id"] in ids
        assert {s.attributes["url.full"] for s in attempts} == {first.url("/a"), second.url("/b")}

    def test_one_subscriber_attempt_is_a_child_of_the_send(self, make_app, receiver, otel):
        """A single delivery (made in the calling thread) is a child of the send span too."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url("/one")}} | otel.settings())

        app.event("a.b").send({})

        (send,) = otel.finished("thorn.send")
        (attempt,) = otel.finished("POST")
        assert attempt.parent.span_id == send.context.span_id

    def test_url_full_has_no_credentials(self, make_app, receiver, otel):
        """``url.full`` drops the user info and masks secret query values."""
        url = f"http://ada:hunter2@127.0.0.1:{receiver.port}/hook?token=tok-123&page=2"
        app = make_app({"THORN_SUBSCRIBERS": {"*": url}} | otel.settings())

        app.event("a.b").send({})

        (attempt,) = otel.finished("POST")
        shown = attempt.attributes["url.full"]
        assert shown == f"http://127.0.0.1:{receiver.port}/hook?token=***&page=2"

    @pytest.mark.parametrize(
        ("status", "outcome"), [(503, "retryable"), (410, "gone"), (422, "failed")]
    )
    def test_failed_attempt_is_an_error(self, make_app, make_receiver, otel, status, outcome):
        """A non-2xx answer sets the span's status to error, ``error.type`` and the outcome."""
        url = make_receiver(answering(status)).url("/hook")
        app = make_app({"THORN_SUBSCRIBERS": {"*": url}} | otel.settings())

        app.event("a.b").send({})

        (attempt,) = otel.finished("POST")
        assert attempt.status.status_code is StatusCode.ERROR
        assert attempt.attributes["error.type"] == str(status)
        assert attempt.attributes["http.response.status_code"] == status
        assert attempt.attributes["thorn.delivery.outcome"] == outcome

    def test_refused_url_span(self, make_app, otel):
        """A URL the validators refuse: an error span with outcome ``refused``, no status."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": refused_url()}} | otel.settings())

        app.event("a.b").send({})

        (attempt,) = otel.finished("POST")
        assert attempt.attributes["thorn.delivery.outcome"] == "refused"
        assert attempt.attributes["error.type"] == "RecipientRefused"
        assert "http.response.status_code" not in attempt.attributes

    def test_buffered_send(self, make_app, receiver, otel):
        """A buffered send's span says so; its attempt happens when the buffer flushes."""
        from thorn_core import buffer_events

        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}} | otel.settings())
        with buffer_events(app=app):
            app.event("a.b").send({})
            assert otel.finished("POST") == []

        (send,) = otel.finished("thorn.send")
        assert send.attributes["thorn.send.state"] == "buffered"
        assert len(otel.finished("POST")) == 1

    def test_telemetry_off(self, make_app, receiver, otel):
        """``THORN_TELEMETRY = False``: no span, no metric."""
        app = make_app(
            {"THORN_SUBSCRIBERS": {"*": receiver.url()}, "THORN_TELEMETRY": False} | otel.settings()
        )

        app.event("a.b").send({})

        assert otel.finished() == []
        assert otel.points("thorn.deliveries") == []


class TestTraceparent:
    """Receivers get ``traceparent`` only when they opted in."""

    @pytest.mark.parametrize("by", ["origin", "uuid"])
    def test_only_opted_in_receivers_get_traceparent(self, make_app, make_receiver, otel, by):
        """The opted-in receiver gets the attempt span's traceparent; the other gets none."""
        from thorn_core import Subscriber

        traced, plain = make_receiver(), make_receiver()
        traced_subscriber = Subscriber(event="a.b", url=traced.url("/hook"))
        opt_in = (
            f"http://127.0.0.1:{traced.port}" if by == "origin" else str(traced_subscriber.uuid)
        )
        app = make_app({"THORN_TRACE_RECEIVERS": [opt_in]} | otel.settings())

        app.event("a.b", subscribers=[traced_subscriber, plain.url("/hook")]).send({})

        (got,) = traced.wait_for(1)
        (other,) = plain.wait_for(1)
        attempt = next(
            s for s in otel.finished("POST") if s.attributes["url.full"] == traced.url("/hook")
        )
        ctx = attempt.context
        flags = int(ctx.trace_flags)
        assert (
            got.headers["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags:02x}"
        )
        assert "traceparent" not in other.headers

    @pytest.mark.parametrize(
        "value",
        [["ftp://hooks.example.com"], ["https://hooks.example.com/path"], ["not a thing"], "x"],
    )
    def test_bad_receivers_fail_at_start_up(self, value):
        """A trace receiver that is neither a uuid nor an http(s) origin is a start-up error."""
        with pytest.raises(ImproperlyConfigured, match="THORN_TRACE_RECEIVERS"):
            Thorn({"THORN_TRACE_RECEIVERS": value}, set_as_current=False)


class TestMetrics:
    """Counters, the latency histogram and their bounded labels."""

    def test_outcomes_of_a_run(self, make_app, make_receiver, otel):
        """Two successes, a 503, a 410 and a refused URL, counted by outcome and endpoint."""
        ok = make_receiver()
        down = make_receiver(answering(503))
        gone = make_receiver(answering(410))
        app = make_app(
            {
                "THORN_SUBSCRIBERS": {
                    "order.paid": [ok.url("/a"), down.url("/b"), gone.url("/c"), refused_url()]
                }
            }
            | otel.settings()
        )
        event = app.event("order.paid")

        event.send({"n": 1})
        event.send({"n": 2})

        count = otel.count
        ok_endpoint = f"http://127.0.0.1:{ok.port}"
        assert count("thorn.deliveries", outcome="success", endpoint=ok_endpoint) == 2
        assert count("thorn.deliveries", outcome="retryable") == 2
        assert count("thorn.deliveries", outcome="gone") == 1  # then deactivated
        assert count("thorn.deliveries", outcome="refused", endpoint="http://10.20.30.40:80") == 2
        assert count("thorn.deliveries", event="order.paid") == 7
        assert count("thorn.endpoints.disabled", reason="gone") == 1
        assert count("thorn.delivery.retries") == 0  # the default dispatcher does not retry
        durations = {
            (a["thorn.endpoint"], a["thorn.outcome"]): p.count
            for a, p in otel.points("thorn.delivery.duration")
        }
        assert durations[(ok_endpoint, "success")] == 2
        assert durations[(f"http://127.0.0.1:{down.port}", "retryable")] == 2
        assert not any(outcome == "refused" for _, outcome in durations)  # no HTTP attempt

    def test_deferred_deliveries_are_counted_by_reason(self, app, otel):
        """A delivery recorded as deferred counts as a deferral with its reason, not a retry."""
        from thorn_core import Subscriber
        from thorn_core.delivery import Delivery

        app.configure(otel.settings())
        subscriber = Subscriber(event="a.b", url="https://hooks.example.com/x")
        for error in ("deferred: circuit open", "deferred: rate limited", "deferred: odd"):
            deferred = Delivery(
                id="d1", event="a.b", subscriber=subscriber, ok=False, attempts=0, error=error
            )
            app.after_delivery(deferred, next_retry_in=5.0)

        assert otel.count("thorn.delivery.deferrals", reason="circuit_open") == 1
        assert otel.count("thorn.delivery.deferrals", reason="rate_limited") == 1
        assert otel.count("thorn.delivery.deferrals", reason="other") == 1
        assert otel.count("thorn.deliveries", outcome="deferred") == 3
        assert otel.count("thorn.delivery.retries") == 0

    def test_open_circuit_counts_a_deferral(self, make_app, make_receiver, otel):
        """Three 503s open the endpoint's circuit; the next send is deferred, not attempted:
        a ``circuit_open`` deferral, no HTTP span."""
        down = make_receiver(answering(503))
        app = make_app(
            {
                "THORN_CIRCUIT_MIN_REQUESTS": 3,
                "THORN_CIRCUIT_COOLOFF": 30,
                "THORN_SUBSCRIBERS": {"order.paid": down.url("/hook")},
            }
            | otel.settings()
        )
        event = app.event("order.paid")

        for _ in range(4):
            event.send({})

        endpoint = f"http://127.0.0.1:{down.port}"
        assert len(down.received) == 3
        assert otel.count("thorn.deliveries", outcome="retryable", endpoint=endpoint) == 3
        assert otel.count("thorn.deliveries", outcome="deferred", endpoint=endpoint) == 1
        assert otel.count("thorn.delivery.deferrals", reason="circuit_open") == 1
        assert len(otel.finished("POST")) == 3

    def test_labels_stay_under_the_cap(self, make_app, otel):
        """10,000 subscribers on distinct origins: at most the cap of endpoint labels, + other."""
        urls = [f"http://10.{i // 250}.{i % 250}.1:8080/hook/{i}" for i in range(10_000)]
        app = make_app(
            {"THORN_SUBSCRIBERS": {"*": urls}, "THORN_METRICS_ENDPOINT_CAP": 25} | otel.settings()
        )

        app.event("a.b").send({})

        points = otel.points("thorn.deliveries")
        endpoints = {a["thorn.endpoint"] for a, _ in points}
        assert len(endpoints) == 26
        assert "other" in endpoints
        assert sum(p.value for _, p in points) == 10_000
        assert not any("/hook" in e for e in endpoints)  # origins, never URLs

    @pytest.mark.parametrize("cap", [0, -1, "100", 2.5, True, None])
    def test_bad_cap_fails_at_start_up(self, cap):
        """``THORN_METRICS_ENDPOINT_CAP`` must be a whole number >= 1."""
        with pytest.raises(ImproperlyConfigured, match="THORN_METRICS_ENDPOINT_CAP"):
            Thorn({"THORN_METRICS_ENDPOINT_CAP": cap}, set_as_current=False)

    def test_prometheus_recipe_scraped_over_loopback(self, make_app, receiver):
        """The docs' recipe: the Prometheus exporter serves Thorn's metrics over HTTP."""

        def run(provider: MeterProvider) -> None:
            app = make_app(
                {
                    "THORN_SUBSCRIBERS": {"*": receiver.url("/hook")},
                    "THORN_METER_PROVIDER": provider,
                }
            )
            app.event("order.paid").send({})

        text = prometheus_scrape(run)

        # The default registry may hold other tests' readers too: find this receiver's series.
        endpoint = f'thorn_endpoint="http://127.0.0.1:{receiver.port}"'
        counters = re.findall(r"^thorn_deliveries_total\{([^}]*)\} ([0-9.]+)$", text, re.M)
        ours = [(labels, value) for labels, value in counters if endpoint in labels]
        assert len(ours) == 1, text
        labels, value = ours[0]
        assert 'thorn_outcome="success"' in labels
        assert float(value) == 1.0
        assert re.search(r"^thorn_delivery_duration_seconds_bucket\{", text, re.M), text


def prometheus_scrape(run: Callable[[MeterProvider], None]) -> str:
    """Serve a Prometheus-exporting meter provider on loopback (docs/observability.md's
    recipe), ``run(provider)``, and return what ``/metrics`` answers."""
    prometheus_client = pytest.importorskip("prometheus_client")
    exporter = pytest.importorskip("opentelemetry.exporter.prometheus")
    reader = exporter.PrometheusMetricReader()  # on prometheus_client's default registry
    provider = MeterProvider(metric_readers=[reader])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server, thread = prometheus_client.start_http_server(port, addr="127.0.0.1")
    try:
        run(provider)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            return str(answer.read().decode())
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        provider.shutdown()  # unregisters the reader


def prometheus_names(metric: str) -> set[str]:
    """The series names the Prometheus exporter writes for one of Thorn's metrics."""
    kind, unit, _ = telemetry_module.METRICS[metric]
    base = metric.replace(".", "_") + ("_seconds" if unit == "s" else "")
    if kind == "counter":
        return {base + "_total"}
    if kind == "histogram":
        return {base + "_bucket", base + "_sum", base + "_count"}
    return {base}


class TestGrafanaDashboard:
    """docs/grafana-dashboard.json queries Thorn's metrics, all of them, and no other."""

    LABELS = frozenset({"thorn_endpoint", "thorn_event", "thorn_outcome", "thorn_reason"})

    def queried(self) -> set[str]:
        dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
        exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
        exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
        return set(re.findall(r"\bthorn_[a-z0-9_]+\b", " ".join(exprs))) - self.LABELS

    def test_every_queried_metric_is_one_thorn_exports(self):
        """Each metric name in a panel's query is a series of a metric in ``METRICS``; each
        metric has a panel."""
        queried = self.queried()
        known = {name: prometheus_names(name) for name in telemetry_module.METRICS}

        assert queried <= set().union(*known.values()), queried
        assert [name for name, series in known.items() if not series & queried] == []

    def test_queried_series_appear_in_a_scrape(self, make_app, make_receiver):
        """A run that records every counter and the histogram, scraped: each queried series of
        them is there (the gauges' names follow the same rule; tests/flask checks their values)."""
        from thorn_core import Subscriber
        from thorn_core.delivery import Delivery

        ok, gone = make_receiver(), make_receiver(answering(410))

        def run(provider: MeterProvider) -> None:
            app = make_app(
                {
                    "THORN_SUBSCRIBERS": {"*": [ok.url("/a"), gone.url("/b")]},
                    "THORN_METER_PROVIDER": provider,
                }
            )
            app.event("order.paid").send({})
            subscriber = Subscriber(event="order.paid", url=ok.url("/c"))
            for error, retryable in (("deferred: circuit open", True), ("answered 503", True)):
                failed = Delivery(
                    id="d",
                    event="order.paid",
                    subscriber=subscriber,
                    ok=False,
                    error=error,
                    retryable=retryable,
                )
                app.after_delivery(failed, next_retry_in=1.0)

        text = prometheus_scrape(run)
        series = set(re.findall(r"^(thorn_[a-z0-9_]+)[{ ]", text, re.M))
        gauges = {n for n, (kind, _, _) in telemetry_module.METRICS.items() if kind == "gauge"}
        expected = self.queried() - set().union(*(prometheus_names(g) for g in gauges))

        assert expected <= series, expected - series


class TestFailingTelemetry:
    """A tracer or exporter that raises never fails a delivery; it is logged once a minute."""

    def test_raising_span_processor(self, make_app, receiver, caplog, no_complaint_yet):
        """Spans that cannot start or end: deliveries succeed, one warning for many sends."""

        class Broken(SpanProcessor):
            def on_start(self, span: Any, parent_context: Any = None) -> None:
                raise RuntimeError("processor down")

            def on_end(self, span: Any) -> None:
                raise RuntimeError("processor down")

        provider = TracerProvider()
        provider.add_span_processor(Broken())
        app = make_app(
            {"THORN_SUBSCRIBERS": {"*": receiver.url()}, "THORN_TRACER_PROVIDER": provider}
        )

        with caplog.at_level(logging.WARNING, logger="thorn_core.telemetry"):
            results = [app.event("a.b").send({}) for _ in range(3)]

        assert all(r.ok for r in results)
        assert len(receiver.received) == 3
        complaints = [r for r in caplog.records if r.name == "thorn_core.telemetry"]
        assert len(complaints) == 1
        assert "processor down" in complaints[0].getMessage()

    def test_raising_meter(self, make_app, receiver, caplog, no_complaint_yet):
        """A meter provider whose instruments raise: deliveries succeed, one warning."""

        class BrokenMeterProvider:
            def get_meter(self, *args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("meter down")

        app = make_app(
            {
                "THORN_SUBSCRIBERS": {"*": receiver.url()},
                "THORN_METER_PROVIDER": BrokenMeterProvider(),
            }
        )
        with caplog.at_level(logging.WARNING, logger="thorn_core.telemetry"):
            result = app.event("a.b").send({})

        assert result.ok
        assert [r.name for r in caplog.records] == ["thorn_core.telemetry"]

    @pytest.mark.parametrize(
        ("setting", "value"),
        [
            ("THORN_TRACER_PROVIDER", "no_such_module:provider"),
            ("THORN_TRACER_PROVIDER", object()),
            ("THORN_METER_PROVIDER", "os:path"),
            ("THORN_TELEMETRY", "yes"),
        ],
    )
    def test_bad_provider_fails_at_start_up(self, setting, value):
        """A provider that cannot be loaded or is none, or a non-bool switch: start-up error."""
        with pytest.raises(ImproperlyConfigured, match=setting):
            Thorn({setting: value}, set_as_current=False)

    def test_without_opentelemetry(self, make_app, receiver, monkeypatch):
        """Without the OpenTelemetry API installed, deliveries work and telemetry is off."""
        for name in [m for m in sys.modules if m.startswith("opentelemetry")]:
            monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, "opentelemetry", None)
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}})

        result = app.event("a.b").send({})

        assert result.ok
        assert app.telemetry.active is False


class TestLogRecords:
    """Every Thorn log record carries the delivery's fields; none carries a secret."""

    def test_records_carry_the_delivery_fields(self, make_app, receiver, caplog):
        """A callback that raises is logged with event, delivery id, origin, attempt, outcome."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url("/hook")}})

        def explode(delivery: Any) -> None:
            raise ValueError("callback bug")

        with caplog.at_level(logging.INFO, logger="thorn_core"):
            result = app.event("order.paid").send({}, on_success=explode)

        (record,) = [r for r in caplog.records if "callback" in r.getMessage()]
        assert record.event == "order.paid"
        assert record.delivery_id == result.deliveries[0].id
        assert record.subscriber == f"http://127.0.0.1:{receiver.port}"
        assert record.attempt == 1
        assert record.outcome == "success"

    def test_every_thorn_module_logs_through_get_logger(self):
        """No module of thorn_core, thorn_django or thorn_flask makes a logger without the
        fields: each uses ``thorn_core.telemetry.get_logger``."""
        src = Path(__file__).resolve().parents[2] / "src"
        plain = sorted(
            str(path.relative_to(src))
            for path in src.rglob("*.py")
            if path.name != "telemetry.py" and "logging.getLogger(" in path.read_text()
        )

        assert plain == [], "use thorn_core.telemetry.get_logger(__name__) in these modules"

    def test_records_outside_a_delivery_have_the_fields_empty(self, caplog):
        """A Thorn record about no delivery still has the fields, as None."""
        logger = telemetry_module.get_logger("thorn_core.app")
        with caplog.at_level(logging.INFO, logger="thorn_core.app"):
            logger.info("configured")

        (record,) = caplog.records
        assert all(getattr(record, name) is None for name in telemetry_module.LOG_FIELDS)

    def test_no_secret_signature_or_payload_at_info_or_above(
        self, make_app, make_receiver, caplog, otel
    ):
        """A run with failures, a 410 and raising callbacks logs no secret, signature or body."""
        ok = make_receiver()
        down = make_receiver(answering(503))
        gone = make_receiver(answering(410))
        urls = [ok.url("/a?token=tok-abc"), down.url("/b"), gone.url("/c"), refused_url()]
        subscribers = [{"url": u, "hmac_secret": SECRET} for u in urls]
        app = make_app({"THORN_SUBSCRIBERS": {"a.b": subscribers}} | otel.settings())

        def explode(delivery: Any, *args: Any) -> None:
            raise ValueError(f"callback saw {delivery.id}")

        with caplog.at_level(logging.DEBUG):
            app.event("a.b").send({"mark": PAYLOAD_MARK}, on_success=explode, on_error=explode)

        signatures = [
            value
            for webhook in ok.received + down.received + gone.received
            for name, value in webhook.headers.items()
            if name in ("hook-hmac", "webhook-signature")
        ]
        assert signatures
        forbidden = [SECRET, PAYLOAD_MARK, "tok-abc", *signatures]
        loud = [r for r in caplog.records if r.levelno >= logging.INFO]
        assert loud  # the callbacks' failures were logged
        for record in loud:
            text = " ".join(
                [
                    record.getMessage(),
                    caplog.handler.format(record),
                    repr(record.args),
                    *(repr(getattr(record, n, None)) for n in telemetry_module.LOG_FIELDS),
                ]
            )
            leaked = [value for value in forbidden if value in text]
            assert not leaked, (record.getMessage(), leaked)

    def test_json_lines_config_from_the_docs(self, make_app, receiver, capsys):
        """The dictConfig of docs/observability.md writes one JSON object per line."""
        import json
        import logging.config

        page = (DOCS / "observability.md").read_text()
        block = re.search(r"```python\n(LOGGING = .*?)```", page, re.S)
        assert block, "docs/observability.md has no LOGGING block"
        namespace: dict[str, Any] = {}
        exec(block.group(1), namespace)  # noqa: S102 - the docs' own example
        config = namespace["LOGGING"]
        config["handlers"]["json"]["stream"] = "ext://sys.stdout"
        loggers = [logging.getLogger(name) for name in config["loggers"]]
        saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
        try:
            logging.config.dictConfig(config)
            app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}})

            def explode(delivery: Any) -> None:
                raise ValueError("boom")

            result = app.event("a.b").send({}, on_success=explode)
        finally:
            for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
                lg.handlers[:], lg.level, lg.propagate = handlers, level, propagate

        lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
        entries = [json.loads(line) for line in lines]
        (entry,) = [e for e in entries if "callback" in e["message"]]
        assert entry["level"] == "ERROR"
        assert entry["delivery_id"] == result.deliveries[0].id
        assert entry["subscriber"] == f"http://127.0.0.1:{receiver.port}"
        assert entry["outcome"] == "success"
        assert "ValueError: boom" in entry["exception"]


class TestImportHygiene:
    """OpenTelemetry is imported only when an app first uses telemetry."""

    def test_import_thorn_core_imports_no_opentelemetry(self):
        """``import thorn_core`` and building an app import no OpenTelemetry module."""
        from .test_import_hygiene import imported_after

        loaded = imported_after(
            "import thorn_core; thorn_core.Thorn({'THORN_DISPATCHER': 'disabled'})"
        )

        assert "thorn_core" in loaded
        assert "opentelemetry" not in loaded

    def test_first_send_imports_the_api_only(self):
        """A send imports the OpenTelemetry API, never its SDK."""
        from .test_import_hygiene import imported_after

        code = (
            "import thorn_core, sys; "
            "app = thorn_core.Thorn({'THORN_DISPATCHER': 'disabled'}); "
            "app.event('a.b').send({}); "
            "assert app.telemetry.active; "
            "assert not [m for m in sys.modules if m.startswith('opentelemetry.sdk')]"
        )
        loaded = imported_after(code)

        assert "opentelemetry" in loaded
