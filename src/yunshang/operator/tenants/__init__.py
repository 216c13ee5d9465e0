"""Tenants: the reconciler (reconciler.py) and the steps that say what each tenant owns (steps/)."""
from .reconciler import Reconciler, setup

__all__ = ["Reconciler", "setup"]
