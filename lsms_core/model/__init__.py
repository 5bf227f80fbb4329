"""The LSMS network (arXiv 2408.17347): configuration, SVLA encoder, Full-Scale Decoder, loss."""

from lsms_core.model.config import VARIANTS, LSMSConfig
from lsms_core.model.lsms import LSMS

__all__ = ["LSMS", "LSMSConfig", "VARIANTS"]
