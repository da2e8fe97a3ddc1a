"""The prompt of an OpenVLA-OFT query and its token layout (the official `get_vla_action` + `predict_action`).

Token ids fixed by the official code (Llama-2's vocabulary): BOS 1, `</s>` 2 (the stop token after the action
slots) and 29871, SentencePiece's empty "▁" token, which training always had after "Out:" and which the official
inference appends when the prompt does not already end with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

PROMPT_TEMPLATE = "In: What action should the robot take to {instruction}?\nOut:"
STOP_TOKEN_ID = 2
EMPTY_TOKEN_ID = 29871


def prompt_text(instruction: str) -> str:
    """The official prompt; the instruction is lower-cased as `get_vla_action` does."""
    return PROMPT_TEMPLATE.format(instruction=instruction.lower())


def prompt_ids(encode: Callable[[str], list[int]], instruction: str) -> list[int]:
    """[BOS, ..., 29871]: the encoded prompt (with BOS) ending with the empty token."""
    ids = encode(prompt_text(instruction))
    return ids if ids[-1] == EMPTY_TOKEN_ID else [*ids, EMPTY_TOKEN_ID]


def fixed_length_prompts(rows: list[list[int]], length: int, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (B, length) int64, rows laid out [BOS] [pad]* [prompt tokens] [29871].

    Padding sits after BOS (not at the end) so that vision tokens go right after BOS and what follows the prompt
    (action slots or tokens) starts at the same index in every row; the models mask pads and skip them in the
    position ids. A fixed length gives every query the same shape (a policy's conds concatenate).
    """
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row) > length:
            raise ValueError(f"a prompt of {len(row)} tokens exceeds max_prompt_tokens = {length}; raise it")
        pad = length - len(row)
        ids[i, 0], mask[i, 0] = row[0], 1
        ids[i, 1 + pad :] = torch.tensor(row[1:], dtype=torch.long)
        mask[i, 1 + pad :] = 1
    return ids, mask


def tokenize_prompts(
    encode: Callable[[str], list[int]], instructions: Sequence[str], pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """`fixed_length_prompts` of the instructions' prompts, padded to the longest."""
    rows = [prompt_ids(encode, text) for text in instructions]
    return fixed_length_prompts(rows, max(len(r) for r in rows), pad_id)
