"""OpenVLA (Kim et al. 2024) written here from the official code's description, loading official checkpoints.

The Prismatic backbone (fused DINOv2 + SigLIP, projector, Llama-2) is the one of `policies/openvla_oft` (same module
and key names); this package adds OpenVLA's token head: each of the 7 action dimensions is one token of 256 bins, the
last 256 ids of the 32,000-token vocabulary (`action_tokens.py`), decoded one after the other by the causal LM
(`model.py`). `loader.py` reads a downloaded folder (openvla/openvla-7b and its LIBERO fine-tunes; no code from the
folder runs), `policy.py` is the `openvla` policy family, `random_folder.py` writes tiny folders for tests.
"""
