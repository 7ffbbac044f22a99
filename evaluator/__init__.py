"""Sharded, resumable LLM evaluation on the Kubernetes Indexed Job contract."""

__version__ = "0.1.0"
