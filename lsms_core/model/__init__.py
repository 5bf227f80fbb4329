"""The networks: LSMS (arXiv 2408.17347; configuration, SVLA encoder, Full-Scale Decoder, loss) and RecLMIS
(arXiv 2404.02845, ``lsms_core.model.reclmis``), chosen by the config's ``variant``."""

from lsms_core.model.config import (
    ALL_VARIANTS,
    RECLMIS_VARIANTS,
    VARIANTS,
    LSMSConfig,
    make_model_config,
    model_config_from_dict,
)
from lsms_core.model.lsms import LSMS


def build_model(cfg):
    """The network for a model config: :class:`LSMS` for an LSMSConfig, RecLMIS for a RecLMISConfig."""
    if cfg.variant in RECLMIS_VARIANTS:
        from lsms_core.model.reclmis import RecLMIS

        return RecLMIS(cfg)
    return LSMS(cfg)


def build_loss(cfg, **kwargs):
    """The training loss for a model config: LSMSLoss, or RecLMISLoss (LSMSLoss + reconstruction, CCL)."""
    if cfg.variant in RECLMIS_VARIANTS:
        from lsms_core.model.reclmis import RecLMISLoss

        return RecLMISLoss(cfg, **kwargs)
    from lsms_core.model.loss import LSMSLoss

    return LSMSLoss(cfg, **kwargs)


__all__ = ["ALL_VARIANTS", "LSMS", "LSMSConfig", "RECLMIS_VARIANTS", "VARIANTS", "build_loss", "build_model",
           "make_model_config", "model_config_from_dict"]
