"""The cluster's identity, kept in ``meta.properties`` like Kafka's log directories."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path


def load_or_create_cluster_id(data_dir: Path, node_id: int) -> str:
    """Read the cluster id of this data directory, creating it on first start."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "meta.properties"
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "cluster.id":
                return value.strip()
    # Kafka's cluster ids are 16 random bytes in URL-safe base64 without padding.
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    path.write_text(f"version=1\ncluster.id={cluster_id}\nnode.id={node_id}\n")
    return cluster_id
