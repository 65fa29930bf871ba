"""Reading /metrics as Prometheus does, for the tests that check its numbers."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(api) -> Samples:
    """GET /metrics and parse it as Prometheus does; every family has HELP text."""
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        assert family.name.startswith("pgbackup_") and family.documentation, family.name
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, tuple(sorted(labels.items()))]


def has(samples: Samples, name: str, **labels: str) -> bool:
    return (name, tuple(sorted(labels.items()))) in samples
