"""Reading GET /metrics in the observability tests: the exposition parsed by prometheus-client."""

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    def __init__(self, text):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, name, **labels):
        """The sample `name` with exactly these labels (0.0 when absent)."""
        for family in self.families.values():
            for sample in family.samples:
                if sample.name == name and sample.labels == {k: str(v) for k, v in labels.items()}:
                    return sample.value
        return 0.0


def scrape(client, **extra):
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return Scrape(response.content.decode())
