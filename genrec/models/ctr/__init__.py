"""CTR backbones sharing one skeleton (`CtrModel`): DeepFM, DeepIM, AutoInt+ and DCNv2."""
from __future__ import annotations

from collections.abc import Sequence

from genrec.models.ctr.autoint import AutoIntPlus
from genrec.models.ctr.base import SHARED_SETTINGS, CtrModel, CtrModelConfig, FieldEmbedding, MoCFusion
from genrec.models.ctr.dcnv2 import DCNv2
from genrec.models.ctr.deepfm import DeepFM
from genrec.models.ctr.deepim import DeepIM

BACKBONES: dict[str, type[CtrModel]] = {"deepfm": DeepFM, "deepim": DeepIM, "autoint+": AutoIntPlus, "dcnv2": DCNv2}


def build_ctr_model(backbone: str, vocab_sizes: list[int], cfg: CtrModelConfig,
                    fused_fields: Sequence[int] | None = None) -> CtrModel:
    if backbone not in BACKBONES:
        raise ValueError(f"unknown CTR backbone {backbone!r}; choose from {sorted(BACKBONES)}")
    model = BACKBONES[backbone](vocab_sizes, cfg, fused_fields)
    model.reset_parameters()
    return model


__all__ = ["BACKBONES", "SHARED_SETTINGS", "CtrModel", "CtrModelConfig", "FieldEmbedding", "MoCFusion", "build_ctr_model",
           "DeepFM", "DeepIM", "AutoIntPlus", "DCNv2"]
