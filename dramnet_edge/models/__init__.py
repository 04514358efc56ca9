"""Model families (DRAMNet, AIBNet), their blocks, and the registry."""

from .registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
