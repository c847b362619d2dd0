"""Assembling one bert_mlm run: tokenizer, sequences, model, batches, loss and evaluation.

Device: the model is moved to `ctx.device` here (the engine's own `.to(device)` is then a no-op);
training batches are built on the CPU and moved by the engine; evaluation moves its fixed batches
to wherever the model's parameters are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from nightbench.suites.base import BuildContext, TrainingTask

from ..config import SuiteConfigError, SuiteDataError
from .batches import StepBatches, iterate_batches
from .cache import cached_directory
from .documents import Documents, load_documents
from .masking import IGNORE_INDEX, MaskingScheme, check_masking, generator_for, mask_tokens
from .model import build_model, check_model_shape
from .sequences import SequenceData, build_sequences, check_sequence_config
from .tokenizer import load_tokenizer, train_wordpiece

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "labels")


def _positive_int(config: dict, key: str) -> int:
    value = config.get(key)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if isinstance(value, bool) or number <= 0 or number != int(number):
        raise SuiteConfigError(f"invalid {key}={value!r}: expected a positive integer")
    return int(number)


def check_config(config: dict) -> None:
    """The checks of build_task that need neither data nor a model, so that planning (a board, before any
    run starts) refuses what the build would; the build makes them again where it uses the keys. The
    data and tokenizer paths are checked only by the build (they need the files)."""
    for key in ("steps", "global_batch_size", "micro_batch_size", "eval_every"):
        _positive_int(config, key)
    if config.get("tokenizer") in (None, "", "none"):  # a WordPiece of vocab_size is trained
        _positive_int(config, "vocab_size")
    for key in ("hidden_size", "num_heads"):
        _positive_int(config, key)
    check_model_shape(config)
    check_sequence_config(config)
    check_masking(float(config["mask_probability"]), float(config["mask_replace"]), float(config["mask_random"]))


def _user_tokenizer(config: dict) -> PreTrainedTokenizerBase | None:
    """The tokenizer the preset names (checked before the corpus is read), or None to train one."""
    name = config.get("tokenizer")
    return None if name in (None, "", "none") else load_tokenizer(str(name))


def _trained_tokenizer(config: dict, documents: Documents, cache_root: Path) -> PreTrainedTokenizerBase:
    """A WordPiece of `vocab_size` trained on these documents, built once and cached."""
    vocab_size = _positive_int(config, "vocab_size")
    text = documents.text_column

    def texts():
        for chunk in documents.dataset.iter(batch_size=1000):
            yield from (t for t in chunk[text] if isinstance(t, str))

    key = {"documents": documents.fingerprint, "vocab_size": vocab_size, "trainer": "wordpiece.py v1"}
    directory = cached_directory(cache_root, "tokenizer", key, lambda out: train_wordpiece(texts(), vocab_size, out))
    return load_tokenizer(str(directory))


def masking_scheme(config: dict, tokenizer: Any) -> MaskingScheme:
    return MaskingScheme(
        mask_token_id=tokenizer.mask_token_id,
        special_token_ids=tuple(sorted(set(tokenizer.all_special_ids))),
        vocab_size=len(tokenizer),
        probability=float(config["mask_probability"]),
        replace_with_mask=float(config["mask_replace"]),
        replace_with_random=float(config["mask_random"]),
    )


def fixed_eval_batches(data: SequenceData, scheme: MaskingScheme, config: dict, batch_size: int) -> list[dict]:
    """Validation batches masked ONCE with a seed independent of the run, so every eval sees the same masks."""
    validation = data.validation()
    limit = config.get("eval_sequences")
    count = len(validation) if limit in (None, "", "none") else min(len(validation), int(limit))
    tokens = torch.from_numpy(validation[:count].astype("int64"))
    input_ids, labels = mask_tokens(tokens, scheme, generator_for(int(config.get("eval_mask_seed", 0)), "eval"))
    whole = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
             "token_type_ids": torch.zeros_like(input_ids), "labels": labels}
    return [{k: v[i:i + batch_size] for k, v in whole.items()} for i in range(0, count, batch_size)]


def _masked_logits(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits at the masked positions, their target tokens); the model sees only the corrupted input."""
    device = next(model.parameters()).device
    inputs = {k: batch[k].to(device) for k in MODEL_INPUTS if k in batch}
    logits = model(**inputs)
    return logits, inputs["labels"][inputs["labels"] != IGNORE_INDEX]


def masked_lm_loss(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """(sum of cross-entropy over the masked positions, metrics for the log)."""
    logits, targets = _masked_logits(model, batch)
    loss_sum = F.cross_entropy(logits.float(), targets, reduction="sum")
    accuracy = float((logits.detach().argmax(-1) == targets).float().mean()) if len(targets) else 0.0
    return loss_sum, {"masked_tokens": float(len(targets)), "train_mlm_accuracy": accuracy}


def masked_token_count(batch: dict) -> int:
    return int((batch["labels"] != IGNORE_INDEX).sum())


def evaluate_masked_lm(model: torch.nn.Module, batches: list[dict], most_frequent_token: int) -> dict[str, float]:
    """Masked-LM accuracy and loss over the masked positions only (unmasked positions never count).

    mlm_accuracy_baseline_unigram: the accuracy of always predicting the training set's most
    frequent ordinary token, on the same masked positions; a model must beat it to have learned.
    """
    was_training = model.training
    model.eval()
    correct, total, loss_sum, unigram_hits = 0, 0, 0.0, 0
    with torch.no_grad():
        for batch in batches:
            logits, targets = _masked_logits(model, batch)
            loss_sum += float(F.cross_entropy(logits.float(), targets, reduction="sum"))
            correct += int((logits.argmax(-1) == targets).sum())
            unigram_hits += int((targets == most_frequent_token).sum())
            total += len(targets)
    model.train(was_training)
    if total == 0:
        raise SuiteConfigError(
            "the validation batches hold no masked token: raise eval_sequences or mask_probability")
    return {"mlm_accuracy": correct / total, "mlm_loss": loss_sum / total,
            "mlm_accuracy_baseline_unigram": unigram_hits / total, "eval_masked_tokens": float(total)}


def build_task(ctx: BuildContext) -> TrainingTask:
    """Every input checked (paths, tokenizer, corpus size) before the model is built."""
    config = ctx.config
    steps = _positive_int(config, "steps")
    global_batch = _positive_int(config, "global_batch_size")
    micro_batch = min(_positive_int(config, "micro_batch_size"), global_batch)
    eval_every = _positive_int(config, "eval_every")
    cache_root = Path(ctx.cache_dir) / "bert_mlm"
    tokenizer = _user_tokenizer(config)
    documents = load_documents(config, cache_root)
    tokenizer = tokenizer or _trained_tokenizer(config, documents, cache_root)
    data = build_sequences(documents, tokenizer, config, cache_root)
    train_count, validation_count = data.meta["train_sequences"], data.meta["validation_sequences"]
    if train_count < global_batch:
        raise SuiteDataError(
            f"corpus too small for one batch: {documents.description} gives {train_count} training sequences of "
            f"{config['seq_len']} tokens, but global_batch_size is {global_batch}; supply more text or lower "
            "global_batch_size / seq_len")
    if validation_count == 0:
        raise SuiteDataError(
            f"corpus too small for validation: no held-out sequence of {config['seq_len']} tokens from "
            f"{documents.description}; supply more text or raise validation_fraction")
    scheme = masking_scheme(config, tokenizer)
    eval_batches = fixed_eval_batches(data, scheme, config, micro_batch)
    model = build_model(config, len(tokenizer), tokenizer.pad_token_id, ctx.seed).to(ctx.device)
    num_workers = int(config.get("num_workers") or 0)
    active: list = []

    def train_batches(start_step: int):
        stream = iterate_batches(StepBatches(data.train_path, global_batch, ctx.seed, scheme, start_step, steps),
                                 num_workers)
        active.append(stream)
        return stream

    def close() -> None:
        while active:
            active.pop().close()  # stops DataLoader workers of an abandoned stream

    return TrainingTask(
        model=model,
        train_batches=train_batches,
        loss=masked_lm_loss,
        count=masked_token_count,
        evaluate=lambda m: evaluate_masked_lm(m, eval_batches, data.meta["most_frequent_token"]),
        total_steps=steps,
        eval_every=eval_every,
        global_batch_size=global_batch,
        micro_batch_size=micro_batch,
        steps_per_epoch=max(1, train_count // global_batch),
        examples_name="sequences",
        close=close,
    )
