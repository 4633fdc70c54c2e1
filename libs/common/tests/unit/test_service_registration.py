"""Services register by entry point; a missing optional dependency is one error naming the extra to install."""

from __future__ import annotations

import re
import sys
from importlib.metadata import EntryPoint

import pytest
from aiops_common import service
from aiops_common.extras import MissingExtraError, requires_extra
from aiops_common.service import ENTRY_POINT_GROUP, Endpoint, ServiceSpec, discover_services
from aiops_common.settings import CommonSettings

pytestmark = pytest.mark.unit


def test_installed_services_are_found_by_entry_point_in_start_order() -> None:
    specs = discover_services()
    assert list(specs)[:3] == ["ingestion", "stream", "detection"]
    assert all(name == spec.name for name, spec in specs.items())
    orders = [spec.order for spec in specs.values()]
    assert orders == sorted(orders)


def test_a_spec_loads_its_settings_and_advertises_its_urls_without_the_cli() -> None:
    settings = discover_services()["ingestion"].load_settings()
    assert isinstance(settings, CommonSettings)
    urls = settings.advertised_urls()
    assert urls[Endpoint.TELEMETRY_HTTP].startswith("http://") and ":" in urls[Endpoint.TELEMETRY_GRPC]
    assert discover_services()["stream"].load_settings().advertised_urls() == {}


def test_a_missing_third_party_module_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules is how Python marks a module as not importable, as if it were not installed.
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    monkeypatch.delitem(sys.modules, "aiops_ingestion.servers", raising=False)
    spec = discover_services()["ingestion"]
    with pytest.raises(MissingExtraError) as caught:
        spec.make_servers(spec.load_settings(), "kafka://127.0.0.1:1")
    assert caught.value.extra == "ingestion"
    assert str(caught.value) == (
        "the ingestion service needs the 'ingestion' extra, which is not installed (no module 'uvicorn'): "
        "pip install 'aiops-platform[ingestion]'"
    )


def test_a_spec_may_name_another_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "drain3", None)
    monkeypatch.delitem(sys.modules, "aiops_stream.log_patterns", raising=False)
    spec = ServiceSpec("logs", "aiops_stream.settings:StreamSettings", "aiops_stream.log_patterns:x", extra="stream")
    with pytest.raises(MissingExtraError, match=r"the logs service needs the 'stream' extra"):
        spec.install_agents(None, spec.load_settings())  # type: ignore[arg-type]  # never reached: the import fails


def test_a_missing_platform_module_is_a_bug_not_a_missing_extra() -> None:
    with pytest.raises(ModuleNotFoundError) as caught, requires_extra("stream", "x"):
        import aiops_no_such_module  # noqa: F401
    assert not isinstance(caught.value, MissingExtraError)


def test_an_entry_point_must_name_its_own_service(monkeypatch: pytest.MonkeyPatch) -> None:
    misnamed = EntryPoint("ingest", "aiops_ingestion.service:SERVICE", ENTRY_POINT_GROUP)
    monkeypatch.setattr(service, "entry_points", lambda group: [misnamed] if group == ENTRY_POINT_GROUP else [])
    expected = "entry point 'ingest' in aiops.services names a service called 'ingestion'"
    with pytest.raises(ValueError, match=re.escape(expected)):
        discover_services()
