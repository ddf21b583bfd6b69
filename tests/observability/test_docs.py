"""docs/operations.md documents every metric nube exports, and only those."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from nube.observability import cluster, metrics, node
from nube.tools.devstack import ROOT

DOCS = ROOT / "docs" / "operations.md"


def exported() -> set[str]:
    """The names of :mod:`nube.observability.metrics` (counters with ``_total``) and of the
    metrics :mod:`nube.observability.cluster` and :mod:`nube.observability.node` make at each
    scrape."""
    names = {
        value._name + ("_total" if value._type == "counter" else "")
        for value in vars(metrics).values()
        if isinstance(value, MetricWrapperBase)
    }
    source = Path(cluster.__file__).read_text() + Path(node.__file__).read_text()
    return names | set(re.findall(r'"(nube_[a-z_]+)"', source))


def test_every_metric_is_in_the_table_of_docs_operations() -> None:
    section = DOCS.read_text().split("## Observability", 1)[1]
    documented = set(re.findall(r"^\| `(nube_[a-z_]+)` \|", section, flags=re.MULTILINE))
    names = exported()
    assert len(names) >= 20
    assert names - documented == set(), "metrics not documented"
    assert documented - names == set(), "documented metrics that do not exist"
