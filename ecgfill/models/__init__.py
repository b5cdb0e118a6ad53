"""Reconstruction models: one inference interface over the linear, U-Net, VAE and any-subset
families; the registry of installed models.

Light to import: torch and onnxruntime load only when a model is built or loaded.
"""

from ecgfill.models.base import ARCHES, PTBXL_ATTRIBUTION, ReconstructionModel
from ecgfill.models.network_leads import network_input_leads, output_leads_for
from ecgfill.models.registry import available_models, installed_cards, load_model, model_dirs

__all__ = [
    "ARCHES",
    "PTBXL_ATTRIBUTION",
    "ReconstructionModel",
    "available_models",
    "installed_cards",
    "load_model",
    "model_dirs",
    "network_input_leads",
    "output_leads_for",
]
