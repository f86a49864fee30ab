from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from aios.observability.tracefile import JsonLinesSpanExporter, read_spans, render, trace_of_run
from tests.support.cli import run_aios
from tests.support.env import child_env


def _write_run(path: Path, run_id: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("StartWorkflow:AgentRun", attributes={"temporalWorkflowID": run_id}),
        tracer.start_as_current_span("RunActivity:action.execute"),
        tracer.start_as_current_span("POST"),
    ):
        pass
    with tracer.start_as_current_span("unrelated"):
        pass
    provider.shutdown()


def test_spans_of_a_run_read_back_as_one_tree(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    _write_run(path, "run-1")
    roots = trace_of_run(read_spans([path]), "run-1")
    assert [root.record["name"] for root in roots] == ["StartWorkflow:AgentRun"]
    lines = list(render(roots))
    assert lines[1].startswith("  StartWorkflow:AgentRun")
    assert lines[2].startswith("    RunActivity:action.execute")
    assert lines[3].startswith("      POST")
    assert not any("unrelated" in line for line in lines)


def test_aios_trace_prints_the_tree_or_says_where_it_looked(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    _write_run(path, "run-2")
    env = child_env(
        AIOS_TRACE_FILE=str(path), COLUMNS="200", OTEL_EXPORTER_OTLP_ENDPOINT=None, OTEL_TRACES_SAMPLER=None
    )
    found = run_aios("trace", "run-2", env=env)
    assert found.returncode == 0, found.stderr
    assert "RunActivity:action.execute" in found.stdout
    missing = run_aios("trace", "nope", env=env)
    assert missing.returncode == 1
    assert str(path) in missing.stderr.replace("\n", "")
    assert "OTEL_TRACES_SAMPLER" not in missing.stderr  # every run is traced by default


def test_aios_trace_names_the_sampler_that_may_have_dropped_a_run(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    _write_run(path, "run-3")
    env = child_env(
        AIOS_TRACE_FILE=str(path),
        COLUMNS="300",
        OTEL_EXPORTER_OTLP_ENDPOINT=None,
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
    )
    missing = run_aios("trace", "run-4", env=env)
    assert missing.returncode == 1
    assert "OTEL_TRACES_SAMPLER=parentbased_traceidratio keeps only some runs" in missing.stderr.replace(
        "\n", ""
    )
    # An unknown name makes the SDK trace every run (it says so itself): no note then.
    env["OTEL_TRACES_SAMPLER"] = "no_such_sampler"
    assert "OTEL_TRACES_SAMPLER" not in run_aios("trace", "run-4", env=env).stderr
