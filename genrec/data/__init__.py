"""Datasets: loaders (research formats and interaction tables), validation, leave-one-out splits and item text
embeddings."""
from genrec.data.embeddings import item_embeddings, item_texts
from genrec.data.interactions import Columns, InteractionTable, ItemTable, k_core, load_interactions
from genrec.data.loaders import load_lcrec, load_p5
from genrec.data.registry import KNOWN, load_dataset
from genrec.data.schema import Catalog, SequenceData
from genrec.data.splits import LeaveOneOut, Split, leave_one_out, popularity
from genrec.data.validation import DataValidationError

__all__ = [
    "Catalog", "SequenceData", "DataValidationError", "LeaveOneOut", "Split", "KNOWN",
    "Columns", "InteractionTable", "ItemTable", "load_interactions", "k_core",
    "load_dataset", "load_p5", "load_lcrec", "leave_one_out", "popularity", "item_embeddings", "item_texts",
]
