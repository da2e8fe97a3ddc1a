"""The checkpoint's tokenizer, read from its `tokenizer.json` with the `tokenizers` library (no code from the folder).

The official processor is transformers 4.40's fast Llama tokenizer built from that file. For a Llama tokenizer
class it re-derives the special-token template from `tokenizer_config.json` (`add_bos_token`, default true;
`add_eos_token`, default false) instead of the file's own; any other class uses the file's template. Both are
reproduced here, so prompts encode to the ids the official code feeds the model.
"""

from __future__ import annotations

from pathlib import Path

from ript_fast.policies.openvla_oft.errors import FolderError, read_json
from ript_fast.policies.openvla_oft.sequence import EMPTY_TOKEN_ID, STOP_TOKEN_ID

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"


class PromptTokenizer:
    def __init__(self, folder: Path, vocab_size: int) -> None:
        from tokenizers import Tokenizer

        path = folder / TOKENIZER_FILE
        if not path.is_file():
            raise FolderError(path, "", "is missing (the checkpoint's tokenizer)")
        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # the tokenizers library raises plain Exceptions for bad files
            raise FolderError(path, "", f"is not a tokenizer file ({err})") from None
        config_path = folder / TOKENIZER_CONFIG_FILE
        settings = read_json(config_path) if config_path.is_file() else {}
        self._llama_template = "Llama" in str(settings.get("tokenizer_class", ""))
        self.bos_id = self._special_id(path, settings, "bos_token", "<s>")
        self.eos_id = self._special_id(path, settings, "eos_token", "</s>")
        self.add_bos = bool(settings.get("add_bos_token", True))
        self.add_eos = bool(settings.get("add_eos_token", False))
        self._check(path, vocab_size)

    def _special_id(self, path: Path, settings: dict, key: str, default: str) -> int:
        token = settings.get(key, default)
        token = token.get("content", default) if isinstance(token, dict) else token
        token_id = self._tokenizer.token_to_id(token)
        if token_id is None:
            raise FolderError(path, key, f"{token!r} is not in the vocabulary")
        return token_id

    def _check(self, path: Path, vocab_size: int) -> None:
        """Refuses a tokenizer whose ids the model cannot embed or whose stop token is not the one the model uses."""
        size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        if size > vocab_size:
            raise FolderError(path, "model.vocab", f"has {size} tokens; the LM embeds only {vocab_size}")
        if self.eos_id != STOP_TOKEN_ID:
            raise FolderError(path, "eos_token", f"has id {self.eos_id}; OpenVLA's stop token is {STOP_TOKEN_ID}")
        if vocab_size <= EMPTY_TOKEN_ID:
            raise FolderError(path, "model.vocab", f"cannot hold the empty token {EMPTY_TOKEN_ID}")

    def encode(self, text: str) -> list[int]:
        """Token ids as the official processor gives them (BOS first for Llama tokenizers)."""
        if not self._llama_template:
            return list(self._tokenizer.encode(text, add_special_tokens=True).ids)
        ids = list(self._tokenizer.encode(text, add_special_tokens=False).ids)
        return [self.bos_id] * self.add_bos + ids + [self.eos_id] * self.add_eos
