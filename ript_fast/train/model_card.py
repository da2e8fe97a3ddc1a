"""The README.md of a checkpoint folder: a Hugging Face model card.

The front matter is YAML in the hub's model-card metadata form (`library_name`, `tags`, and the `model-index`
results the hub shows as evaluation results: one entry per env, a `success_rate` metric per measurement); the body
says the same for a reader: what the policy is, its tasks, how it was trained (the checkpoint's notes), a table of
success rates with episode counts and Wilson 95% intervals, and how to load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from ript_fast.train.pretrained import EvalScore

FAMILY_TEXT = {
    "quest": "a QueST-style tokenized policy: an action autoencoder whose codes a causal transformer prior predicts "
    "from the observation and the task; every weight is in `model.safetensors`.",
    "openvla_oft": "an OpenVLA-OFT policy: `model.safetensors` holds the trained weights only (LoRA, action and "
    "scale heads); the frozen base model is read from the official checkpoint folder that config.json names "
    "(`policy.openvla_oft.checkpoint`), which must be present where the policy is loaded.",
    "openvla": "an OpenVLA policy (actions as 7 tokens of 256 bins): `model.safetensors` holds its LoRA weights only; "
    "the frozen base model is read from the official checkpoint folder that config.json names "
    "(`policy.openvla.checkpoint`), which must be present where the policy is loaded.",
}


def model_card(meta: dict[str, Any], scores: list[EvalScore], name: str) -> str:
    """The card of a checkpoint whose header (`checkpoint.checkpoint_meta`) is `meta`."""
    front = yaml.safe_dump(_front_matter(meta, scores, name), sort_keys=False, allow_unicode=True)
    sections = [
        f"# {name}",
        _summary(meta),
        _tasks(meta["spec"]),
        _training(meta["notes"]),
        _evaluation(scores),
        _usage(meta),
    ]
    return f"---\n{front}---\n\n" + "\n\n".join(s for s in sections if s) + "\n"


def _front_matter(meta: dict[str, Any], scores: list[EvalScore], name: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "library_name": "ript-fast",
        "tags": ["robotics", "reinforcement-learning", "ript-vla", meta["family"]],
    }
    if scores:
        data["model-index"] = [{"name": name, "results": [_result(env, scores) for env in _envs(scores)]}]
    return data


def _envs(scores: list[EvalScore]) -> list[str]:
    return list(dict.fromkeys(s.env for s in scores))


def _result(env: str, scores: list[EvalScore]) -> dict[str, Any]:
    """One model-index result: the measurements made on `env` (the hub groups metrics by task and dataset)."""
    metrics = [
        {
            "type": "success_rate",
            "name": s.name,
            "value": round(s.rate, 4),
            "args": {"successes": s.successes, "episodes": s.episodes},
            "verified": False,
        }
        for s in scores
        if s.env == env
    ]
    return {
        "task": {"type": "robotics", "name": "Robot manipulation"},
        "dataset": {"type": env, "name": f"{env} held-out contexts"},
        "metrics": metrics,
    }


def _summary(meta: dict[str, Any]) -> str:
    what = FAMILY_TEXT.get(meta["family"], f"a {meta['family']!r} policy.")
    spec = meta["spec"]
    return (
        f"A robot manipulation policy saved by ript-fast {meta['version']}: {what} It acts with "
        f"{spec['action_dim']}-d actions from a {spec['state_dim']}-d state; `config.json` holds its full "
        "configuration."
    )


def _tasks(spec: dict[str, Any]) -> str:
    if not spec["task_names"]:
        return "## Tasks\n\nNot task-conditioned: it reads the instruction text of whatever task it is given."
    pairs = zip(spec["task_names"], spec["instructions"], strict=True)
    rows = [f"| {_cell(task)} | {_cell(text)} |" for task, text in pairs]
    return "\n".join(["## Tasks", "", "| task | instruction |", "|---|---|", *rows])


def _training(notes: dict[str, Any]) -> str:
    if not notes:
        return ""
    lines = [f"- {key}: {_plain(value)}" for key, value in notes.items()]
    return "\n".join(["## Training", "", "What the checkpoint's notes record:", "", *lines])


def _evaluation(scores: list[EvalScore]) -> str:
    if not scores:
        return ""
    rows = []
    for s in scores:
        low, high = s.interval()
        rows.append(f"| {s.name} | {s.env} | {s.successes} / {s.episodes} | {s.rate:.3f} | {low:.3f} - {high:.3f} |")
    header = "| measurement | env | successes / episodes | success rate | 95% interval (Wilson) |"
    return "\n".join(["## Evaluation", "", header, "|---|---|---|---|---|", *rows])


def _usage(meta: dict[str, Any]) -> str:
    env = meta["notes"].get("env", "ENV")
    return "\n".join(
        [
            "## Use",
            "",
            "```python",
            "from ript_fast.train.pretrained import from_pretrained",
            'policy = from_pretrained("path/to/this/folder")  # a local copy, e.g. huggingface_hub.snapshot_download',
            "```",
            "",
            f"`ript-fast eval --ckpt path/to/this/folder --env {env} --episodes 50` measures it again.",
        ]
    )


def _cell(text: str) -> str:
    """Text inside a markdown table cell (a `|` would end the cell)."""
    return text.replace("|", "\\|")


def _plain(value: Any) -> str:
    """A notes value on one line (lists and objects as compact JSON-like text)."""
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value) or "(none)"
    return str(value)
