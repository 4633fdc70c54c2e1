"""Service metadata loads from YAML, is validated at startup, and never overwrites a sender's label."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiops_ingestion.normalize import Enricher, EnrichmentConfigError
from aiops_ingestion.settings import IngestionSettings

pytestmark = pytest.mark.unit


def test_yaml_file_maps_services_to_string_labels(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text("checkout:\n  team: payments\n  tier: 1\n  critical: true\n  zone: eu-west-1a\nempty: {}\n")
    enricher = Enricher.from_settings(IngestionSettings(ingest_metadata_file=path))
    assert dict(enricher.labels_for("checkout")) == {
        "team": "payments",
        "tier": "1",
        "critical": "true",
        "zone": "eu-west-1a",
    }
    assert dict(enricher.labels_for("empty")) == {} and dict(enricher.labels_for("unknown")) == {}


def test_enrich_adds_only_labels_the_sender_did_not_set() -> None:
    enricher = Enricher.from_mapping({"checkout": {"team": "payments", "zone": "a"}})
    labels = {"zone": "b"}
    enricher.enrich("checkout", labels)
    assert labels == {"zone": "b", "team": "payments"}


def test_no_file_configured_means_no_enrichment() -> None:
    enricher = Enricher.from_settings(IngestionSettings(ingest_metadata_file=None))
    assert not enricher and dict(enricher.labels_for("checkout")) == {}


def test_empty_file_means_no_enrichment(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert not Enricher.from_file(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "expected a mapping of service name to labels"),
        ("checkout: payments\n", "checkout: expected a mapping of label name to value"),
        ("checkout:\n  bad-name: x\n", "label name 'bad-name' is invalid"),
        ("checkout:\n  __internal: x\n", "reserved"),
        ("checkout:\n  owners: [a, b]\n", "checkout.owners: value must be a string or number"),
        ("checkout: {team: [unclosed\n", "is not valid YAML"),
        ("1: {team: a}\n", "service name 1 is not a non-empty string"),
    ],
)
def test_bad_files_are_clear_startup_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "services.yaml"
    path.write_text(text)
    with pytest.raises(EnrichmentConfigError) as caught:
        Enricher.from_file(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_missing_file_is_a_clear_startup_error(tmp_path: Path) -> None:
    with pytest.raises(EnrichmentConfigError, match="cannot read service metadata file"):
        Enricher.from_settings(IngestionSettings(ingest_metadata_file=tmp_path / "absent.yaml"))


def test_enricher_is_immutable_after_loading() -> None:
    enricher = Enricher.from_mapping({"checkout": {"team": "payments"}})
    with pytest.raises(TypeError):
        enricher.services["checkout"]["team"] = "other"  # type: ignore[index]
