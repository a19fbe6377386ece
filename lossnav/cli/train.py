"""``lossnav train``: train a network with a learning rule (the paper's Fig. 2e–f setting, App. B).

    lossnav train --data digits|mnist1d|modular --model mlp|cnn|transformer --rule RULE --epochs E --seed S
                  [--device cpu|cuda|mps|auto] [--modulus P] [--train-fraction F]
                  [--batch B] [--lr LR] [--json] [--out DIR]
                  [--checkpoint FILE] [--resume FILE] [--tasks split|permuted [--task-count N]]

RULE: any rule of :mod:`lossnav.training.rules` (``--help`` lists them all), including plug-ins
(entry points ``lossnav.rules``, ``--plugin FILE.py:factory``). ``--lr`` means what the rule's
``lr`` means (Δt for mpc and optimal_quadratic; default: the rule's). ``--checkpoint FILE``
saves model, optimizer and RNG state after every epoch; ``--resume FILE`` continues such a run
up to ``--epochs`` epochs in total, bit-identically to an uninterrupted run. ``--out DIR``
writes ``metrics.json`` (per-epoch train loss, test loss and accuracy, wall time; fallbacks),
``loss.png`` and ``accuracy.png``. Unknown names print the valid ones (exit 2); a diverged or
unresumable run exits 1. Output paths and ``--batch`` are checked before any work; outputs are
written atomically (:mod:`ocp.results.files`). Ctrl-C ends with one line saying which epoch
the checkpoint holds, exit 130.
``--device`` (default auto: cuda, else mps, else cpu) puts the model, the data and the optimizer
state there; one that is not available is a usage error (exit 2); the JSON records ``device``.
``--data modular --model transformer`` is the grokking task (docs/training.md), ``--modulus`` and
``--train-fraction`` its options. torch is imported only when this command runs; it runs on one
thread (small models).
"""
from __future__ import annotations

import os
import sys

import ocp
from ocp.results import files

from . import arguments
from .arguments import PROG


def add_parser(commands):
    parser = commands.add_parser(
        "train", help="train a network with a learning rule (digits/mnist1d)",
        description="Train a classifier with a learning rule and record loss, accuracy and wall time.")
    add = parser.add_argument
    add("--data", required=True, metavar="DATA",
        help="digits (scikit-learn 8×8), mnist1d (generated locally) or modular (a + b mod p, generated)")
    add("--model", required=True, metavar="MODEL", help="mlp, cnn (1-D) or transformer (token data: modular)")
    add("--device", default="auto", metavar="DEVICE",
        help="cpu, cuda, cuda:N, mps or auto (default: auto, the first available of cuda, mps, cpu)")
    add("--modulus", type=arguments.positive_int, metavar="P",
        help="--data modular: the modulus p (default: 97)")
    add("--train-fraction", type=arguments.positive_float, metavar="F",
        help="--data modular: fraction of the p² pairs used for training, the rest is the test set "
             "(default: 0.3)")
    add("--rule", required=True, metavar="RULE", help=_RuleHelp("a rule of the registry"))
    add("--epochs", required=True, type=arguments.positive_int, help="epochs in total")
    add("--seed", required=True, type=arguments.non_negative_int,
        help="seed of the model, the shuffling and the probes")
    add("--batch", type=arguments.positive_int, default=32, help="minibatch size (default: 32)")
    add("--lr", type=arguments.positive_float, metavar="LR", help="the rule's lr (default: the rule's own)")
    add("--json", action="store_true", help="print the metrics as JSON on stdout")
    add("--out", metavar="DIR", help="write metrics.json, loss.png and accuracy.png to DIR")
    add("--checkpoint", metavar="FILE", help="save a checkpoint after every epoch")
    add("--resume", metavar="FILE",
        help="continue from a checkpoint (same data, model, rule, seed, batch, lr)")
    add("--tasks", metavar="KIND",
        help="train on a task sequence: split or permuted (docs/continual_learning.md); "
             "--epochs then counts per task")
    add("--task-count", type=arguments.positive_int, metavar="N",
        help="number of tasks with --tasks (default: 5)")
    parser.set_defaults(handler=run)
    return parser


class _RuleHelp(str):
    """The --rule help text, read from the rule registry only when --help prints it (the
    registry imports torch and the installed ``lossnav.rules`` plug-ins)."""

    def __mod__(self, params):            # argparse expands help as ``help % params``
        from lossnav.training import rules
        return (f"one of: {', '.join(rules.RULES)} (lossnav.training.rules; plug-ins add rules "
                "through the entry-point group lossnav.rules or --plugin FILE.py:factory)")


def resolve_setting(args, training):
    """(device, data options) of ``--device``, ``--modulus``, ``--train-fraction``; UsageError (exit
    2, one line) for a device that is not available or a data option the dataset does not take."""
    from lossnav.training.devices import DeviceError, resolve_device
    try:
        device = resolve_device(args.device)
    except DeviceError as exc:
        raise arguments.UsageError(str(exc)) from None
    given = (("modulus", args.modulus), ("train_fraction", args.train_fraction))
    options = {key: value for key, value in given if value is not None}
    if options and args.data != "modular":
        raise arguments.UsageError("--modulus and --train-fraction are options of --data modular, "
                                   f"not {args.data!r}")
    return device, options


def load(args, training, options):
    """The dataset of ``--data`` with its options; UsageError for bad option values."""
    try:
        return training.load_data(args.data, **options)
    except ValueError as exc:
        raise arguments.UsageError(arguments.one_line(exc)) from None


def build_model(args, training, data, device):
    """The ``--model`` for the data, on ``device``; UsageError if it does not fit the data."""
    try:
        return training.make_model(args.model, data, seed=args.seed).to(device)
    except ValueError as exc:
        raise arguments.UsageError(arguments.one_line(exc)) from None


def _check_name(kind, value, registry):
    if value not in registry:
        raise arguments.UsageError(f"unknown {kind} {value!r}; valid: {', '.join(registry)}")


def check_paths(args) -> None:
    """Every path the run will write or read, checked before any work (OutputPathError /
    FileFormatError: one line, exit 1): a bad --checkpoint must not cost an epoch."""
    if args.checkpoint is not None:
        files.check_output_path(args.checkpoint, what="--checkpoint")
    if args.out is not None:
        files.check_output_folder(args.out, what="--out")
    if args.resume is not None and not os.path.isfile(args.resume):
        raise ocp.FileFormatError(f"--resume {args.resume}: "
                                  + ("is a folder" if os.path.isdir(args.resume) else "does not exist"))


def _check_batch(batch, examples, dataset) -> None:
    if batch > examples:
        raise arguments.UsageError(f"--batch {batch} exceeds the training set of {dataset} "
                                   f"({examples} examples); use at most {examples}")


def interrupted(args, last_epoch) -> int:
    """Ctrl-C: one line saying what was kept; exit 130 (128 + SIGINT), as shells do."""
    if args.checkpoint is None:
        kept = "no checkpoint (run with --checkpoint FILE to keep progress)"
    elif last_epoch is None and args.resume is None:
        kept = f"no epoch finished, {args.checkpoint} not written"
    elif last_epoch is None:
        kept = f"no epoch finished since {args.resume}; resume with --resume {args.resume}"
    else:
        kept = (f"checkpoint {args.checkpoint} holds epoch {last_epoch}; "
                f"continue with --resume {args.checkpoint}")
    print(f"{PROG}: interrupted: {kept}", file=sys.stderr)
    return 130


def run(args) -> int:
    import torch

    from lossnav import training
    # the models are small: intra-op threads do not pay off, and on a loaded machine their
    # spin-waiting made an epoch 100× slower (13 s instead of 0.1 s for digits-mlp)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(args, training)
    finally:
        torch.set_num_threads(threads)


def _run(args, training) -> int:
    from lossnav.training.loop import TrainingError
    _check_name("dataset", args.data, training.DATASETS)
    _check_name("model", args.model, training.MODELS)
    _check_name("rule", args.rule, training.RULES)
    if args.task_count is not None and args.tasks is None:
        raise arguments.UsageError("--task-count needs --tasks")
    if args.tasks is not None:                 # continual learning (lossnav/training/continual.py)
        from lossnav.training.tasks import TASK_KINDS
        _check_name("task sequence", args.tasks, TASK_KINDS)
    device, options = resolve_setting(args, training)
    check_paths(args)                          # before any work: no epoch is lost to a bad path
    if args.tasks is not None:
        return run_sequence(args, training)
    data = load(args, training, options)
    _check_batch(args.batch, len(data.x_train), args.data)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    model = build_model(args, training, data, device)
    lr = args.lr if args.lr is not None else training.RULES[args.rule].default_lr
    try:
        optimizer = training.make_optimizer(args.rule, model.parameters(), lr)
    except ValueError as exc:
        raise arguments.UsageError(arguments.one_line(exc)) from None
    config = {"data": args.data, "model": args.model, "rule": args.rule, "seed": args.seed,
              "batch": args.batch, "lr": lr, "tasks": None,   # "tasks": a sequence's checkpoint is refused
              **options}                                       # the modular split: a resume must match it
    completed = []
    try:
        history = training.train(model, optimizer, data, args.epochs, seed=args.seed, batch=args.batch,
                                 checkpoint=args.checkpoint, resume=args.resume, config=config,
                                 on_epoch=lambda record: completed.append(record["epoch"]))
    except TrainingError as exc:
        print(f"{PROG}: error: {arguments.one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return interrupted(args, completed[-1] if completed else None)
    metrics = summary(config, history, optimizer, model)
    metrics["device"] = str(device)
    if args.out:
        write_outputs(args.out, metrics)
    if args.json:
        print(arguments.dumps(metrics))
    else:
        print(f"{args.rule} on {args.data}-{args.model} (seed {args.seed}, lr {lr:g}, batch {args.batch})")
        print("epoch  train_loss  test_acc  wall_s")
        for record in metrics["epochs"]:
            print(f"{record['epoch']:5d}  {record['train_loss']:10.4f}  {record['test_accuracy']:7.2f}%"
                  f"  {record['wall_time']:6.2f}")
        if hasattr(optimizer, "fallbacks"):
            print(f"MPC: {metrics['replans']} plans, {metrics['solves']} by IPOPT, "
                  f"{metrics['fallbacks']} fallbacks, "
                  f"{metrics.get('host_syncs', 0)} host synchronisations on {metrics['device']}")
    return 0


def run_sequence(args, training) -> int:
    """``lossnav train --tasks KIND`` (after :func:`_run` checked the names): build the tasks,
    train, print a table or the JSON, write ``--out``."""
    from lossnav.training.continual import plot_sequence, summary, train_sequence
    from lossnav.training.loop import TrainingError
    from lossnav.training.tasks import make_tasks
    device, options = resolve_setting(args, training)
    data = load(args, training, options)
    try:
        tasks = make_tasks(data, args.tasks, getattr(args, "task_count", None))
    except ValueError as exc:
        print(f"{PROG}: error: {arguments.one_line(exc)}", file=sys.stderr)
        return 2
    smallest = min(len(task.data.x_train) for task in tasks)
    _check_batch(args.batch, smallest, f"{args.data} ({args.tasks} tasks)")
    model = build_model(args, training, tasks[0].data, device)
    lr = args.lr if args.lr is not None else training.RULES[args.rule].default_lr
    try:
        optimizer = training.make_optimizer(args.rule, model.parameters(), lr)
    except ValueError as exc:
        print(f"{PROG}: error: {arguments.one_line(exc)}", file=sys.stderr)
        return 2
    config = {"data": args.data, "model": args.model, "rule": args.rule, "seed": args.seed,
              "batch": args.batch, "lr": lr, "tasks": args.tasks, "task_count": len(tasks),
              "epochs_per_task": args.epochs}
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    completed = []

    def on_epoch(task, record):         # what the Ctrl-C line says the checkpoint holds
        completed.append(f"{record['epoch']} of task {task + 1}")
    try:
        sequence = train_sequence(model, optimizer, tasks, args.epochs, seed=args.seed, batch=args.batch,
                                  checkpoint=args.checkpoint, resume=args.resume, config=config,
                                  on_epoch=on_epoch)
    except (TrainingError, ValueError) as exc:
        print(f"{PROG}: error: {arguments.one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return interrupted(args, completed[-1] if completed else None)
    metrics = summary(config, sequence, model)
    metrics["device"] = str(device)
    if args.out:
        files.write_text(os.path.join(args.out, "metrics.json"), arguments.dumps(metrics) + "\n")
        plot_sequence(metrics, os.path.join(args.out, "continual.png"))
    if args.json:
        print(arguments.dumps(metrics))
        return 0
    print(f"{args.rule} on {args.data}-{args.model}, {args.tasks} tasks × {args.epochs} epochs "
          f"(seed {args.seed}, lr {lr:g}, batch {args.batch})")
    print("task  classes        plasticity  earlier  forgetting  average")
    for i, entry in enumerate(sequence):
        def cell(value):
            return "      —" if value is None else f"{value:7.2f}"
        classes = ",".join(map(str, entry["classes"])) if len(entry["classes"]) <= 4 else "all"
        print(f"{entry['task']:5s} {classes:13s} {metrics['plasticity'][i]:9.2f}%  "
              f"{cell(metrics['earlier_accuracy'][i])}  {cell(metrics['forgetting'][i])}     "
              f"{metrics['average_accuracy'][i]:6.2f}")
    return 0


def summary(config, history, optimizer, model) -> dict:
    """The metrics dict of a run (the JSON of ``--json`` and ``--out``)."""
    epochs = history["epochs"]
    metrics = {**config, "parameters": sum(p.numel() for p in model.parameters()), "epochs": epochs,
               "final_test_accuracy": epochs[-1]["test_accuracy"],
               "final_train_loss": epochs[-1]["train_loss"],
               "mean_epoch_time": sum(r["wall_time"] for r in epochs) / len(epochs),
               "steps": history["steps"], "fallbacks": history["fallbacks"],
               "skipped_steps": history["skipped_steps"]}
    for key in ("replans", "solves", "hvps", "host_syncs"):
        if hasattr(optimizer, key):
            metrics[key] = int(getattr(optimizer, key))
    return metrics


def write_outputs(directory, metrics) -> None:
    """metrics.json, loss.png, accuracy.png in ``directory``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    files.write_text(os.path.join(directory, "metrics.json"), arguments.dumps(metrics) + "\n")
    epochs = [r["epoch"] for r in metrics["epochs"]]
    title = f"{metrics['rule']} on {metrics['data']}-{metrics['model']} (seed {metrics['seed']})"
    for name, keys, label in (("loss.png", ("train_loss", "test_loss"), "cross-entropy"),
                              ("accuracy.png", ("test_accuracy",), "test accuracy (%)")):
        figure, axis = plt.subplots(figsize=(5, 3.5))
        for key in keys:
            axis.plot(epochs, [r[key] for r in metrics["epochs"]], marker="o", label=key.replace("_", " "))
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.set_title(title, fontsize=9)
        axis.legend()
        figure.tight_layout()
        try:
            files.atomic_savefig(figure, os.path.join(directory, name), dpi=120)
        finally:
            plt.close(figure)
