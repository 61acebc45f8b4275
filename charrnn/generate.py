"""From text to text: encode prompts, run `charrnn.decode` on a trained model's stepper, and
assemble the output text (streaming, stop strings). Used by `charrnn sample` and `beam`."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from charrnn import decode
from charrnn import device as devices
from charrnn.config import MAX_LEN_RATIO, WORD_PIECES
from charrnn.errors import CharrnnError, UsageError
from charrnn.kinds import lm, seq2seq
from charrnn.models import packed
from charrnn.tokenizer import BOS_ID, EOS_ID, UNK_ID, Tokenizer
from charrnn.trained import Trained

UNKNOWN_MODES = ("error", "skip", "unk")
# A language model is trained on a stream without ends: it never produces <eos>.
LM_BANNED = (*decode.BANNED, EOS_ID)


def encode_prompt(
    tokenizer: Tokenizer, text: str, unknown: str = "error", where: str = "--prompt"
) -> tuple[list[int], int]:
    """[<bos>] + the prompt's ids, and how many characters were not in the vocabulary.

    unknown: error (name them), skip (drop them) or unk (keep them as <unk>)."""
    if unknown not in UNKNOWN_MODES:
        raise UsageError("--unknown", f"unknown mode '{unknown}'", "use error, skip or unk")
    ids = tokenizer.encode(text) if text else np.zeros(0, dtype=np.int64)
    missing = int(np.count_nonzero(ids == UNK_ID))
    if missing and unknown == "error":
        normalized = tokenizer.normalize(text)
        counts = tokenizer.unknown_chars(normalized, ids)
        shown = ", ".join(
            repr(c) if n == 1 else f"{c!r} x{n}" for c, n in sorted(counts.items())[:10]
        )
        more = f" and {len(counts) - 10} more" if len(counts) > 10 else ""
        raise CharrnnError(
            where,
            f"{len(counts)} character(s) not in the model's vocabulary: {shown}{more}",
            "remove them, or pass --unknown skip or --unknown unk",
        )
    if missing and unknown == "skip":
        ids = ids[ids != UNK_ID]
    return [BOS_ID, *ids.tolist()], missing


@dataclass
class Generated:
    """One output: its text, token count, total log-probability, how it ended."""

    prompt_index: int
    sample_index: int
    text: str
    tokens: int
    logprob: float
    finished: str


def stepper_for(trained: Trained):
    """The model's single-step interface."""
    if trained.translates:
        return seq2seq.Seq2SeqStepper(trained.model, trained.device)
    return lm.LMStepper(trained.model, trained.device)


SEQ2SEQ_NO_REPEAT = 3  # see no_repeat_default


def no_repeat_default(trained: Trained) -> int:
    """--no-repeat-ngram when not given: 3 for a seq2seq model whose outputs are word pieces
    (Multi30k fr-en, BPE 8,000: greedy BLEU 13.5 -> 14.6, beam 5 15.5 -> 16.2, outputs no
    longer loop), off for characters (a date repeats its digits) and language models."""
    pieces = trained.translates and trained.tokenizer.vocab_size >= WORD_PIECES
    return SEQ2SEQ_NO_REPEAT if pieces else 0


def encode_inputs(
    trained: Trained, texts: Sequence[str], unknown: str = "error", lines: bool = False
) -> tuple[list[list[int]], int]:
    """What decoding starts from: a language model's prompts ([<bos>] + ids), or a seq2seq
    model's sources (ids + [<eos>], in the source vocabulary); and the unknown count.
    `lines`: the texts are stdin's lines (errors name the line), not --prompt."""
    out, missing = [], 0
    for i, text in enumerate(texts):
        where = f"stdin line {i + 1}" if lines else "--prompt"
        if trained.translates:
            ids, n = encode_prompt(trained.source_tokenizer, text, unknown, where)
            ids = [*ids[1:], EOS_ID]
        else:
            ids, n = encode_prompt(trained.tokenizer, text, unknown, where)
        out.append(ids)
        missing += n
    return out, missing


def _to_decode(trained: Trained, inputs: Sequence[list[int]]) -> list[int]:
    """Which inputs to decode: all but a seq2seq source without tokens (an empty line, or
    one whose characters were all skipped as unknown). It has nothing to translate, and its
    output is empty, so outputs stay line-aligned with the sources."""
    if not trained.translates:
        return list(range(len(inputs)))
    return [i for i, ids in enumerate(inputs) if len(ids) > 1]  # more than <eos>


def _plan(trained: Trained, inputs: Sequence[list[int]], cap: int, ratio: float):
    """Per-input length limits, repetition histories and banned tokens for this model kind."""
    if trained.translates:
        limits = seq2seq.max_lengths(list(inputs), ratio, cap)
        return limits, [[] for _ in inputs], decode.BANNED
    return [cap] * len(inputs), list(inputs), LM_BANNED


def in_precision(trained: Trained):
    """The context that decodes in the trained model's precision: on the CPU the packed
    decoding step's own dtype (see models/packed.py), elsewhere autocast."""
    if trained.device.type == "cpu":
        return packed.decoding(torch.bfloat16 if trained.precision == "bf16" else torch.float32)
    return devices.autocast(trained.device, trained.precision)


def _in_precision(fn):
    """Run `fn(trained, ...)` in the trained model's precision."""

    @functools.wraps(fn)
    def wrapper(trained: Trained, *args, **kwargs):
        with in_precision(trained):
            return fn(trained, *args, **kwargs)

    return wrapper


def _row_generator(seed: int, position: int, k: int, device: torch.device) -> torch.Generator:
    """The random stream of sample k of the input at `position`."""
    state = np.random.SeedSequence([seed, position, k]).generate_state(2, np.uint32)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(state[0]) << 32 | int(state[1]))
    return generator


@torch.inference_mode()
@_in_precision
def sample(
    trained: Trained,
    inputs: Sequence[list[int]],
    cfg: decode.SampleConfig,
    *,
    num_samples: int = 1,
    stops: Sequence[str] = (),
    max_chars: int | None = None,
    seed: int | None = None,
    positions: Sequence[int] | None = None,
    max_len_ratio: float = MAX_LEN_RATIO,
    on_text: Callable[[int, str], None] | None = None,
) -> list[Generated]:
    """`num_samples` outputs for every input (from `encode_inputs`), all generated together
    as one batch. `on_text(row, text)` streams each row's text as it becomes final. An
    empty seq2seq source gets empty outputs (finished "empty").

    Sample k of the input at `positions[i]` (default i: its line number, say) draws from
    its own random stream, seeded by (seed, position, k): it is the same whatever else is
    decoded with it, and however the inputs are cut into batches."""
    positions = list(range(len(inputs))) if positions is None else list(positions)
    if seed is None:
        seed = secrets.randbits(63)  # not torch.seed(): that reseeds torch's own generator
    keep = _to_decode(trained, inputs)
    if len(keep) < len(inputs):
        options = {"num_samples": num_samples, "stops": stops, "max_chars": max_chars}
        options |= {"seed": seed, "max_len_ratio": max_len_ratio}
        return _sample_some(trained, inputs, keep, cfg, positions, on_text, options)
    stepper = stepper_for(trained)
    generators = (  # greedy decoding draws nothing
        [
            _row_generator(seed, positions[i], k, trained.device)
            for i in range(len(inputs))
            for k in range(num_samples)
        ]
        if cfg.temperature > 0
        else None
    )
    logits, state = stepper.start(list(inputs))
    rows = torch.arange(len(inputs), device=trained.device).repeat_interleave(num_samples)
    logits, state = logits.index_select(0, rows), stepper.select(state, rows)
    limits, histories, banned = _plan(trained, inputs, cfg.length, max_len_ratio)
    limits = [limits[i // num_samples] for i in range(len(rows))]
    histories = [histories[i // num_samples] for i in range(len(rows))]
    texts = [TextAssembler(trained.tokenizer.stream_decoder(), stops, max_chars) for _ in histories]
    outputs: list[list[str]] = [[] for _ in histories]  # pieces, joined at the end

    def emit(row: int, piece: str) -> None:
        if piece:
            outputs[row].append(piece)
            if on_text is not None:
                on_text(row, piece)

    def should_end(row: int, token: int) -> bool:
        emit(row, texts[row].feed(token))
        return texts[row].done

    def on_block(rows_: list[int], blocks: list[list[int]]) -> None:
        for row, tokens in zip(rows_, blocks, strict=True):
            emit(row, texts[row].feed_many(tokens))

    # Stop strings and character limits look at every token; plain streaming gets its text a
    # block of tokens at a time (every few milliseconds); otherwise text comes at the end.
    by_token = bool(stops) or max_chars is not None
    by_block = on_text is not None and not by_token
    samples = decode.sample(
        stepper,
        logits,
        state,
        cfg,
        histories=histories,
        generator=generators,
        should_end=should_end if by_token else None,
        on_block=on_block if by_block else None,
        banned=banned,
        max_lens=limits,
    )
    results = []
    for row, s in enumerate(samples):
        finished = s.finished
        if by_token or by_block:
            emit(row, texts[row].finish())
            text = "".join(outputs[row])
            finished = texts[row].reason or finished  # a stop string or --max-chars
        else:
            text = trained.tokenizer.decode(s.tokens)
        results.append(
            Generated(
                row // num_samples, row % num_samples, text, len(s.tokens), s.logprob, finished
            )
        )
    return results


def _sample_some(trained, inputs, keep: list[int], cfg, positions, on_text, options: dict):
    """`sample` of the inputs `keep` only; the others (empty seq2seq sources) get empty
    outputs, finished "empty"."""
    n = options["num_samples"]
    found = {}
    if keep:
        stream = (
            None
            if on_text is None
            else lambda row, text: on_text(keep[row // n] * n + row % n, text)
        )
        chosen = [inputs[i] for i in keep]
        where = [positions[i] for i in keep]
        for r in sample(trained, chosen, cfg, positions=where, on_text=stream, **options):
            r.prompt_index = keep[r.prompt_index]
            found[r.prompt_index, r.sample_index] = r
    return [
        found.get((i, k)) or Generated(i, k, "", 0, 0.0, "empty")
        for i in range(len(inputs))
        for k in range(n)
    ]


@torch.inference_mode()
@_in_precision
def beam(
    trained: Trained,
    inputs: Sequence[list[int]],
    cfg: decode.BeamConfig,
    *,
    end: str | None = None,
    max_len_ratio: float = MAX_LEN_RATIO,
    on_step=None,
) -> list[list[dict]]:
    """The n-best beam-search outputs of every input, all searched as one batch.

    A seq2seq hypothesis ends at <eos> (at most max_len_ratio x its source length). A
    language model has no end: `end` (e.g. a newline) finishes a hypothesis at any token whose
    text contains it, and the text is cut there. An empty seq2seq source gets one empty
    hypothesis (finished "empty")."""
    keep = _to_decode(trained, inputs)
    if len(keep) < len(inputs):
        empty = {"text": "", "tokens": 0, "logprob": 0.0, "score": 0.0, "finished": "empty"}
        outputs: list[list[dict]] = [[{**empty, "ids": []}] for _ in inputs]
        if keep:
            found = beam(
                trained,
                [inputs[i] for i in keep],
                cfg,
                end=end,
                max_len_ratio=max_len_ratio,
                on_step=on_step,
            )
            for i, hyps in zip(keep, found, strict=True):
                outputs[i] = hyps
        return outputs
    stepper = stepper_for(trained)
    tok = trained.tokenizer
    limits, histories, banned = _plan(trained, inputs, cfg.max_len, max_len_ratio)
    ends = [i for i, b in enumerate(tok.token_bytes) if end.encode() in b] if end else []
    if end and not ends and not trained.translates:
        raise UsageError(
            "--end",
            f"no token of the model's vocabulary contains {end!r}, so no hypothesis could end",
            "give a text that fits in one token, e.g. '\\n'",
        )
    if trained.translates:
        ends = [EOS_ID]
    lm_end = bool(end) and not trained.translates
    logits, state = stepper.start(list(inputs))
    hyps = decode.beam_search(
        stepper,
        logits,
        state,
        cfg,
        histories=histories,
        ends=ends,
        max_lens=limits,
        on_step=on_step,
        banned=banned,
    )
    results = []
    for per_input in hyps:
        rows = []
        for h in per_input:
            text = tok.decode(h.tokens)
            if end and end in text:
                text = text[: text.index(end)]
            rows.append(
                {
                    "text": text,
                    "tokens": len(h.tokens),
                    "logprob": h.logprob,
                    "score": h.score,
                    # a language model's hypothesis ends at the --end string, not <eos>
                    "finished": "end" if (lm_end and h.finished == "eos") else h.finished,
                    "ids": h.tokens,
                }
            )
        results.append(rows)
    return results


class TextAssembler:
    """Turns one row's tokens into text as they arrive, ending at stop strings.

    Text that might be the beginning of a stop string is held back until it is clear; a stop
    string itself is never emitted. `max_chars` ends the row after that many characters."""

    def __init__(self, stream_decoder, stops: Sequence[str] = (), max_chars: int | None = None):
        self.decoder = stream_decoder
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.max_chars = max_chars
        self.pending = ""
        self.emitted = 0
        self.done = False
        self.reason = ""  # why it is done: "stop" (a stop string) or "length" (max_chars)
        self.plain = not self.stops and max_chars is None  # nothing to hold back or cut

    def feed(self, token: int) -> str:
        """Add a token; return the text that is now final (may be empty)."""
        if self.plain:
            return self.decoder.feed_one(token)
        if self.done:
            return ""
        self.pending += self.decoder.feed_one(token)
        return self._release(final=False)

    def feed_many(self, tokens: Sequence[int]) -> str:
        """Add several tokens at once (streaming without stop strings or limits)."""
        return self.decoder.feed(tokens)

    def finish(self) -> str:
        """The rest of the text at the end of generation."""
        if self.plain:
            return self.decoder.flush()
        if not self.done:
            self.pending += self.decoder.flush()
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        text = self.pending
        found = [at for at in (text.find(stop) for stop in self.stops) if at >= 0]
        if found:  # the earliest stop string ends the text, whichever was given first
            text, self.done, self.reason = text[: min(found)], True, "stop"
        room = None if self.max_chars is None else self.max_chars - self.emitted
        if room is not None and len(text) >= room:
            # cut before a stop string that came in the same token: the limit ended it
            self.reason = "length" if len(text) > room else self.reason or "length"
            text, self.done = text[:room], True
        if self.done or final:
            self.pending = ""
        else:
            keep = self._unsafe_tail(text)
            text, self.pending = text[: len(text) - keep], text[len(text) - keep :]
        self.emitted += len(text)
        return text

    def _unsafe_tail(self, text: str) -> int:
        """Length of the longest suffix of `text` that begins some stop string."""
        for size in range(min(self.hold, len(text)), 0, -1):
            tail = text[-size:]
            if any(stop.startswith(tail) for stop in self.stops):
                return size
        return 0
