"""The `ript-fast` command line: one subcommand per stage of the pipeline.

User mistakes (bad config, missing file) end with one clear line on stderr and exit code 2, not a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

EXIT_USAGE = 2
EXIT_FAILURE = 1


class UsageError(Exception):
    """A mistake in what the user asked for; reported as one line, exit code 2."""


def _user_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean the user asked for something wrong (bad config, bad file), not a bug."""
    from ript_fast.config import ConfigError
    from ript_fast.data.collect import TooFewDemosError
    from ript_fast.data.demo_file import DemoFileError
    from ript_fast.train.checkpoint import CheckpointError
    from ript_fast.train.run_folder import RunFolderError

    return (ConfigError, DemoFileError, CheckpointError, TooFewDemosError, RunFolderError, FileNotFoundError)


def _mode(args: argparse.Namespace) -> str:
    """The run-folder mode (`run_folder.py`) that --resume / --overwrite ask for."""
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other: continue the run, or replace it")
    return "resume" if args.resume else "overwrite" if args.overwrite else "new"


def _sft(args: argparse.Namespace) -> int:
    from ript_fast.config import find_config, load_config
    from ript_fast.train.sft import SftConfig, run_sft

    mode = _mode(args)
    try:
        cfg = load_config(SftConfig, find_config(args.config), args.overrides)
        args.run_dir = Path(args.out or cfg.out_dir)
        args.resume_command = f"ript-fast sft --config {args.config} --out {args.run_dir} --resume"
        path = run_sft(cfg, out_dir=args.run_dir, mode=mode)
    except _user_errors() as err:
        raise UsageError(str(err)) from None
    print(f"checkpoint: {path}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ript_fast.train.checkpoint import load_policy
    from ript_fast.train.devices import check_device
    from ript_fast.train.evaluate import evaluate, write_result
    from ript_fast.train.run_folder import claim_output_file

    if args.episodes < 1:
        raise UsageError("--episodes must be >= 1")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    ckpt = Path(args.ckpt)
    out = Path(args.out) if args.out else ckpt.with_name(f"{ckpt.stem}_eval_{args.env.replace('/', '_')}.json")
    video = out.with_suffix(".gif") if args.video else None
    sample = None if args.mode == "auto" else args.mode == "sample"
    try:
        check_device(args.device, "--device")
        policy = load_policy(args.ckpt, device=args.device)
        for path in (out, video):
            if path is not None:
                claim_output_file(path, args.overwrite)
        result = evaluate(policy, args.env, args.episodes, args.seed, args.batch_size, sample, video)
    except (*_user_errors(), ValueError) as err:  # also: unknown task, a task the policy was not trained on
        raise UsageError(str(err)) from None
    write_result(result, out, {"checkpoint": str(ckpt)})
    print(f"{args.env}: success {result.successes}/{result.episodes} = {result.success_rate:.3f} -> {out}")
    return 0


def _collect_demos(args: argparse.Namespace) -> int:
    from ript_fast.data.collect import collect_demos
    from ript_fast.train.run_folder import claim_output_file

    try:
        out = claim_output_file(args.out, args.overwrite)
        path = collect_demos(args.env, args.num_demos, out, args.noise, args.seed, args.num_envs, args.obs_mode)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(f"demos: {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from ript_fast.config import find_config, load_config
    from ript_fast.train.hub import HubError, check_hub
    from ript_fast.train.preflight import env_tasks
    from ript_fast.train.ript_run import FINAL_FOLDER, run_train
    from ript_fast.train.run_config import TrainConfig
    from ript_fast.train.run_folder import check_resumable
    from ript_fast.train.run_summary import end_summary, held_out_episodes, start_line

    mode = _mode(args)
    if args.resume and (args.init or args.config or args.out):
        raise UsageError("--resume RUN_DIR continues a run under its own config: drop --config, --init and --out")
    overrides = list(args.overrides) + ([f"init={args.init}"] if args.init else [])
    try:
        if args.push_to_hub:
            check_hub(args.push_to_hub)
        if args.resume:
            check_resumable(Path(args.resume), "ript")
            config = Path(args.resume) / "config.yaml"
        else:
            config = find_config(args.config or "default")
        cfg = load_config(TrainConfig, config, overrides)
        args.run_dir = Path(args.out or args.resume or cfg.out_dir)
        args.resume_command = f"ript-fast train --resume {args.run_dir}"
        main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 alone speaks
        if main_rank:
            print(start_line(cfg, args.run_dir, resuming=bool(args.resume)), flush=True)
        path = run_train(cfg, args.run_dir, mode=mode)
    except (*_user_errors(), HubError) as err:
        raise UsageError(str(err)) from None
    if main_rank:
        print(end_summary(args.run_dir, path, str(cfg.env), held_out_episodes(cfg, len(env_tasks(cfg)))))
    if args.push_to_hub and os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone uploads
        _push_folder(args.run_dir / FINAL_FOLDER, args.push_to_hub, args.hub_token)
    return 0


def _push(args: argparse.Namespace) -> int:
    from ript_fast.train.checkpoint import CheckpointError

    try:
        _push_folder(Path(args.folder), args.repo, args.hub_token, args.private or None)
    except CheckpointError as err:
        raise UsageError(str(err)) from None
    return 0


def _push_folder(folder: Path, repo: str, token: str | None, private: bool | None = None) -> None:
    """Uploads a checkpoint folder; a failure is `HubError` (one line, exit 1, the folder kept)."""
    from ript_fast.train.hub import push_to_hub

    print(f"pushed {folder} -> {push_to_hub(folder, repo, token, private)}")


def _bench(args: argparse.Namespace) -> int:
    import subprocess

    names = BENCHMARKS if args.what == "all" else [args.what]
    scripts = [Path("bench") / f"bench_{name}.py" for name in names]
    missing = [str(s) for s in scripts if not s.is_file()]
    if missing:
        raise UsageError(f"run `ript-fast bench` from a ript-fast source checkout (missing {', '.join(missing)})")
    for script in scripts:
        print(f"== {script}", flush=True)
        code = subprocess.call([sys.executable, str(script), *args.args])
        if code:
            return code
    return 0


BENCHMARKS = ["ops", "engine", "policies"]


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. env=metaworld/reach-v3")


def _add_overwrite(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--overwrite", action="store_true", help=f"replace what --out holds: {what} (never deleted)")


def _add_hub_token(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hub-token", help="hub access token (default: HF_TOKEN or the one `hf auth login` stored)")


TRAIN_KEYS = """main keys (key=value; every key: docs/ARCHITECTURE.md and ript_fast/train/run_config.py):
  env=metaworld/<task> | metaworld/ML45 | libero/<suite>[/<task>]   init=<checkpoint, or an OpenVLA-OFT folder>
  ript.iterations=15  ript.group_size=16 (K)  ript.batch_rollouts=64 (B)  ript.dynamic_sampling=true
  ript.ppo_epochs=4  ript.clip_eps=0.2  ript.lr=<or the policy's own>  contexts.eval_size=50  device=cpu|cuda"""


def presets_epilog(kind: str) -> str:
    """The packaged presets of one command (`train`: configs with an `ript` section; `sft`: with `stages`), each
    with the first line of its own comment, for `--help`."""
    from ript_fast.config import load_yaml, preset_dirs

    section = "ript" if kind == "train" else "stages"
    rows = []
    for folder in preset_dirs()[:1]:
        for path in sorted(folder.glob("*.yaml")):
            if section in load_yaml(path):
                about = path.read_text().splitlines()[0].lstrip("# ").rstrip(":")
                rows.append(f"  {path.stem:<26} {textwrap.shorten(about, 90, placeholder=' ...')}")
    return "presets (--config NAME):\n" + "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ript-fast", description="Reinforcement interactive post-training for VLAs")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        help="RIPT-VLA post-training (Algorithm 1) of a policy",
        epilog=f"{presets_epilog('train')}\n\n{TRAIN_KEYS}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--config", help="YAML run config or preset name (default: the packaged default.yaml)")
    train.add_argument("--init", help="stage-2 checkpoint to start from (default: collect demos and run SFT)")
    train.add_argument("--out", help="run folder (default: the config's out_dir)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last checkpoint")
    _add_overwrite(train, "a run folder that holds a run is moved aside to <name>.replaced-<time>, then a new run")
    train.add_argument("--push-to-hub", metavar="REPO", help="upload the final policy folder to this hub model repo")
    _add_hub_token(train)
    _add_overrides(train)
    train.set_defaults(func=_train)

    sft = sub.add_parser(
        "sft",
        help="supervised training (stage 1/2) of a policy on a demo file",
        epilog=presets_epilog("sft"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sft.add_argument("--config", required=True, help="YAML config, e.g. configs/sft_quest_metaworld_cpu.yaml")
    sft.add_argument("--out", help="run folder (default: the config's out_dir)")
    sft.add_argument(
        "--resume", action="store_true", help="continue the run in the run folder from its last checkpoint"
    )
    _add_overwrite(sft, "a run folder that holds a run is moved aside to <name>.replaced-<time>, then a new run")
    _add_overrides(sft)
    sft.set_defaults(func=_sft)

    ev = sub.add_parser("eval", help="success rate of a checkpoint on held-out contexts")
    ev.add_argument("--ckpt", required=True)
    ev.add_argument("--env", required=True, help="e.g. metaworld/reach-v3")
    ev.add_argument("--episodes", type=int, default=50)
    ev.add_argument("--video", action="store_true", help="also write a GIF of a few episodes next to the JSON")
    ev.add_argument("--seed", type=int, default=100_000, help="first seed of the held-out contexts")
    ev.add_argument("--batch-size", type=int, default=50, help="episodes stepped as one batch")
    ev.add_argument(
        "--mode",
        choices=["auto", "sample", "greedy"],
        default="auto",
        help="auto: what the family's paper numbers use (QueST samples, OFT takes the mean)",
    )
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--out", help="result JSON (default: next to the checkpoint)")
    _add_overwrite(ev, "an existing result (and video) is moved aside to <stem>.replaced-<time>.json")
    ev.set_defaults(func=_eval)

    demos = sub.add_parser("collect-demos", help="scripted-expert demonstrations to an HDF5 file")
    demos.add_argument("--env", required=True, help="e.g. metaworld/pick-place-v3")
    demos.add_argument("--num-demos", type=int, required=True)
    demos.add_argument("--out", required=True)
    demos.add_argument("--noise", type=float, default=0.0, help="Gaussian action noise std (QueST's data: 0.2)")
    demos.add_argument("--seed", type=int, default=0)
    demos.add_argument("--num-envs", type=int, default=16, help="episodes stepped as one batch")
    demos.add_argument(
        "--obs-mode", choices=["state", "state+rgb"], default="state", help="state+rgb also stores obs/rgb"
    )
    _add_overwrite(demos, "an existing file at --out is moved aside to <stem>.replaced-<time>.hdf5")
    demos.set_defaults(func=_collect_demos)

    push = sub.add_parser("push", help="upload a checkpoint folder (config.json, weights, model card) to the hub")
    push.add_argument("folder", help="a checkpoint folder, e.g. runs/ript-default/policy")
    push.add_argument("repo", help="hub model repo, e.g. your-name/ript-reach-v3")
    push.add_argument("--private", action="store_true", help="create the repo private (an existing one is kept)")
    _add_hub_token(push)
    push.set_defaults(func=_push)

    bench = sub.add_parser("bench", help="run the benchmarks and print ratio tables")
    bench.add_argument("what", nargs="?", default="all", choices=[*BENCHMARKS, "all"])
    bench.add_argument("args", nargs=argparse.REMAINDER, help="passed on to the benchmark script")
    bench.set_defaults(func=_bench)
    return parser


@contextlib.contextmanager
def _warnings_as_lines(prefix: str) -> Iterator[None]:
    """Our own warnings (e.g. an iteration without a learning signal) as one line each, `<prefix> warning: ...`,
    rather than Python's file:line format with a source line; other libraries' warnings keep their format."""
    shown = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if f"{os.sep}ript_fast{os.sep}" in filename:
            print(f"{prefix} warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command and returns its exit code; a rank of a torchrun job exits here instead (see
    `exit_process`: returning would let the interpreter's finalization race gloo's threads)."""
    from ript_fast.train.distributed import exit_process, in_torchrun_job

    code = _run_command(argv)
    if in_torchrun_job():
        exit_process(code)
    return code


def _run_command(argv: Sequence[str] | None) -> int:
    from ript_fast.train.hub import HubError
    from ript_fast.train.interrupts import RunInterrupted, stop_on_signals
    from ript_fast.train.rollout import NonFiniteActionError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may sit anywhere, also after options (`train env=x --out y ript.lr=1e-4`)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    prefix = f"ript-fast {args.command}:"
    try:
        with stop_on_signals(), _warnings_as_lines(prefix):
            return int(args.func(args) or 0)
    except UsageError as err:
        print(f"{prefix} error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (NonFiniteActionError, HubError) as err:  # a diverged policy (the run folder keeps its last
        print(f"{prefix} error: {err}", file=sys.stderr)  # checkpoint), a failed upload (the folder stays)
        return EXIT_FAILURE
    except (RunInterrupted, KeyboardInterrupt) as err:
        code = err.exit_code if isinstance(err, RunInterrupted) else 130
        print(f"{prefix} {err or 'interrupted'}{_resume_hint(args)}", file=sys.stderr)
        return code
    except OSError as err:
        if err.errno not in WRITE_ERRNOS:
            raise
        where = err.filename or getattr(args, "run_dir", None) or "the output"
        print(f"{prefix} error: cannot write {where}: {err.strerror}{_resume_hint(args)}", file=sys.stderr)
        return EXIT_USAGE


# A full, read-only or forbidden destination is the user's to fix, not a bug: one line, exit 2
WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def _resume_hint(args: argparse.Namespace) -> str:
    command = getattr(args, "resume_command", None)
    run_dir = getattr(args, "run_dir", None)
    if command is None or run_dir is None or not (Path(run_dir) / "config.yaml").is_file():
        return "; nothing was written"
    return f"; the run folder keeps its last checkpoint: resume with `{command}`"


if __name__ == "__main__":
    sys.exit(main())
