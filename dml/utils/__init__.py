"""Small shared helpers: seeding, atomic file writes, run provenance, input checks."""

from dml.utils.atomic import atomic_save_json, atomic_write
from dml.utils.checks import check_embeddings_and_labels
from dml.utils.provenance import run_info
from dml.utils.seeding import seed_everything

__all__ = [
    "atomic_save_json",
    "atomic_write",
    "check_embeddings_and_labels",
    "run_info",
    "seed_everything",
]
