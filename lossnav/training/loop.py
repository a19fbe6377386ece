"""The epoch loop: minibatch training with ``step(closure)``, evaluation, checkpoints.

Per epoch: the training set is shuffled with a ``torch.Generator`` seeded by ``seed`` and cut
into ⌊N/B⌋ full minibatches (the remainder is dropped: a 3-example last batch of digits
gives a gradient that rules without momentum take at full size); every minibatch is one
``optimizer.step(closure)`` (the closure recomputes the cross-entropy and
calls ``backward``; rules that need Hessian-vector products build them inside ``step``).
Recorded per epoch: mean training loss over the minibatches, test loss and accuracy,
training wall time (evaluation excluded), skipped steps and, for optimizers that have
them, fallbacks (``RecedingHorizon``). A tqdm bar on stderr shows progress (when stderr is
a terminal, or always with ``progress=True``).

Checkpoints (``checkpoint=PATH``, written atomically after every epoch and sealed with a
SHA-256 of their content, so a corrupted or truncated file is refused on resume): model and
optimizer ``state_dict``, the shuffling generator's state, torch's global RNG state (used by
Hutchinson probes), the history and the run's configuration. :func:`train` with
``resume=PATH`` continues from it; the result is bit-identical to an uninterrupted run with
the same seed (same thread count; tested).
"""
from __future__ import annotations

import io
import math
import sys
import time

import torch
import torch.nn.functional as F

import ocp
from ocp.results import files

CHECKPOINT_VERSION = 2   # 2: sealed with a SHA-256 of the content


class TrainingError(RuntimeError):
    """A run that cannot start or continue (bad checkpoint, diverged loss)."""


def evaluate(model, x, y, batch=1000):
    """(mean cross-entropy, accuracy in %) of ``model`` on (x, y)."""
    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), batch):
            logits = model(x[start:start + batch])
            total += float(F.cross_entropy(logits, y[start:start + batch], reduction="sum"))
            correct += int((logits.argmax(1) == y[start:start + batch]).sum())
    model.train()
    return total / len(x), 100.0 * correct / len(x)


def train(model, optimizer, data, epochs, seed=0, batch=32, checkpoint=None, resume=None, config=None,
          progress=None, on_epoch=None, evaluations=None):
    """Train ``epochs`` epochs in total (a resumed run counts the checkpoint's); return the history:
    {"epochs": [{epoch, train_loss, test_loss, test_accuracy, wall_time}], "fallbacks",
    "skipped_steps", "steps"}. ``on_epoch(record)`` is called after each epoch.

    ``evaluations``: {name: (x, y)} further test sets, recorded per epoch as
    ``record["evaluations"][name] = {"loss", "accuracy"}`` (e.g. the earlier tasks of a
    continual-learning sequence, trained by calling :func:`train` once per task with the same
    model and optimizer)."""
    from tqdm import tqdm
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch", batch)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    history = {"epochs": [], "steps": 0}
    if resume is not None:
        history = _restore(resume, model, optimizer, generator, config)
        _check_not_past(resume, history, epochs)
    device = _device_of(model)                         # the data goes where the model is
    x, y = data.x_train.to(device), data.y_train.to(device)
    batches = len(x) // batch
    if batches < 1:
        raise ValueError(f"batch ({batch}) must not exceed the training set ({len(x)} examples)")
    for epoch in range(len(history["epochs"]) + 1, epochs + 1):
        # drawn on the CPU: the same order on any device
        order = torch.randperm(len(x), generator=generator).to(device)
        bar = tqdm(total=batches, desc=f"epoch {epoch}/{epochs}", file=sys.stderr, leave=False,
                   disable=None if progress is None else not progress)
        started = time.perf_counter()
        losses = _epoch_losses(model, optimizer, x, y, order, batch, batches, bar)
        wall = time.perf_counter() - started
        bar.close()
        _check_finite(losses, epoch)
        history["steps"] += batches
        record = _epoch_record(model, data, evaluations, device, epoch, losses, wall)
        history["epochs"].append(record)
        _copy_counters(optimizer, history)
        if checkpoint is not None:
            _save(checkpoint, model, optimizer, generator, history, config)
        if on_epoch is not None:
            on_epoch(record)
    history.setdefault("fallbacks", int(getattr(optimizer, "fallbacks", 0)))
    history.setdefault("skipped_steps", int(getattr(optimizer, "skipped_steps", 0)))
    return history


def _check_positive_int(name, value):
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_not_past(resume, history, epochs):
    """A checkpoint that has run more epochs than asked for is refused (it cannot be un-trained)."""
    done = len(history["epochs"])
    if done > epochs:
        raise TrainingError(f"checkpoint {resume} has already run {done} epochs, more than the "
                            f"{epochs} asked for; ask for at least {done}")


def _minibatch_closure(model, optimizer, inputs, targets):
    """The ``step(closure)`` argument for one minibatch: recompute the cross-entropy, backward."""
    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(inputs), targets)
        loss.backward()
        return loss
    return closure


def _epoch_losses(model, optimizer, x, y, order, batch, batches, bar):
    """One epoch of ``batches`` full minibatches in ``order``; the training losses as floats."""
    losses = []
    for start in range(0, batches * batch, batch):
        index = order[start:start + batch]
        closure = _minibatch_closure(model, optimizer, x[index], y[index])
        losses.append(optimizer.step(closure).detach())   # read once per epoch: no host sync per step
        bar.update()
    # the read also waits for the device, so the caller's wall time is complete
    return torch.stack(losses).double().cpu().tolist()


def _check_finite(losses, epoch):
    if not all(map(math.isfinite, losses)):
        bad = next(value for value in losses if not math.isfinite(value))
        raise TrainingError(f"the training loss is {bad} at epoch {epoch}: diverged (lower --lr)")


def _epoch_record(model, data, evaluations, device, epoch, losses, wall):
    """The epoch's history entry: mean training loss, test loss and accuracy, further test sets."""
    test_loss, accuracy = evaluate(model, data.x_test.to(device), data.y_test.to(device))
    record = {"epoch": epoch, "train_loss": sum(losses) / len(losses), "test_loss": test_loss,
              "test_accuracy": accuracy, "wall_time": wall}
    if evaluations:
        record["evaluations"] = {}
        for name, (x_extra, y_extra) in evaluations.items():
            extra_loss, extra_accuracy = evaluate(model, x_extra.to(device), y_extra.to(device))
            record["evaluations"][name] = {"loss": extra_loss, "accuracy": extra_accuracy}
    return record


def _copy_counters(optimizer, history):
    """The optimizer's counters into the history: fallbacks and skipped steps, and for
    ``RecedingHorizon`` its plans, IPOPT solves and host reads."""
    history["fallbacks"] = int(getattr(optimizer, "fallbacks", 0))
    history["skipped_steps"] = int(getattr(optimizer, "skipped_steps", 0))
    for key in ("replans", "solves", "host_syncs"):
        if hasattr(optimizer, key):
            history[key] = int(getattr(optimizer, key))


def _device_of(model):
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


def _save(path, model, optimizer, generator, history, config):
    """The checkpoint as ``torch.save`` bytes sealed with their SHA-256 (:func:`ocp.results.files.seal`),
    written atomically (:func:`ocp.results.files.atomic_write`): an interrupted save keeps the last one."""
    state = {"version": CHECKPOINT_VERSION, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "history": history,
             "config": config,     # CUDA's generators too: Hutchinson probes on a GPU draw from them
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        files.write_bytes(path, files.seal(buffer.getvalue()))
    except OSError as exc:
        raise TrainingError(f"cannot write checkpoint {path}: {exc.strerror}") from None


def load_checkpoint(path):
    """The checkpoint dict at ``path``; TrainingError if it is missing, not a checkpoint, or its
    content does not match its checksum (a corrupted or truncated file is refused, never loaded)."""
    try:
        payload = files.read_sealed(path)
    except ocp.FileFormatError as exc:
        raise TrainingError(f"checkpoint {exc}") from None
    try:
        # mapped to the CPU: a checkpoint written on one device resumes on any other
        state = torch.load(io.BytesIO(payload), weights_only=False, map_location="cpu")
    except Exception as exc:
        raise TrainingError(f"{path} is not a checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise TrainingError(f"{path} is not a lossnav checkpoint (version {CHECKPOINT_VERSION})")
    return state


def _restore(path, model, optimizer, generator, config):
    state = load_checkpoint(path)
    if config is not None and state["config"] is not None:
        changed = [key for key in config if key in state["config"] and state["config"][key] != config[key]]
        if changed:
            settings = ", ".join(f"{k}={state['config'][k]!r} (now {config[k]!r})" for k in changed)
            raise TrainingError(f"checkpoint {path} was written with different settings: {settings}")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise TrainingError(f"checkpoint {path} does not fit this model/optimizer: {exc}") from None
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state["history"]
