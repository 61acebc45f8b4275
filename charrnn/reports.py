"""Results as lines of text: `charrnn eval`'s scores and the data directory summaries of
`tokenize` and `info`, one function per kind of result (the kinds registry, charrnn.kinds,
names each kind's). The CLI prints them, or the result as JSON."""

from __future__ import annotations

MAX_LABELS_SHOWN = 30  # rows of the per-label table; --json has them all


def _where(result: dict) -> str:
    return result["data"] + (f" ({result['split']})" if result.get("split") else "")


def loss_lines(result: dict) -> list[str]:
    """A language model's loss, per token, character and byte."""
    return [
        f"  loss        {result['loss']:.4f} nats/token   perplexity {result['perplexity']:.3f}",
        f"  bits/token  {result['bits_per_token']:.4f}",
        f"  bits/char   {result['bpc']:.4f}",
        f"  bits/byte   {result['bits_per_byte']:.4f}",
    ]


def language_model(result: dict) -> list[str]:
    """charrnn.metrics.score_lm's result."""
    lines = [
        f"{result['checkpoint']} on {_where(result)}: {result['tokens']:,} tokens, "
        f"{result['chars']:,} chars, {result['bytes']:,} bytes",
        *loss_lines(result),
    ]
    if result["unknown"]:
        shown = ", ".join(f"{c!r} x{n}" for c, n in list(result["unknown_chars"].items())[:8])
        lines.append(f"  unknown     {result['unknown']:,} tokens scored as <unk>: {shown}")
    return lines


def classifier(result: dict) -> list[str]:
    """charrnn.metrics.score_classifier's result: the scores, a table per label, the
    confusion matrix."""
    labels = list(result["labels"])
    width = max(len(label) for label in [*labels, "label"])
    lines = [
        f"{result['checkpoint']} on {_where(result)}: {result['examples']:,} texts",
        f"  accuracy    {result['accuracy']:.4f}",
        f"  macro F1    {result['macro_f1']:.4f}   weighted F1 {result['weighted_f1']:.4f}",
        f"  loss        {result['loss']:.4f} nats/text",
        f"  {'label':<{width}}  precision  recall      F1  support",
    ]
    for label, s in result["labels"].items():
        lines.append(
            f"  {label:<{width}}  {s['precision']:9.4f}  {s['recall']:6.4f}  {s['f1']:6.4f}"
            f"  {s['support']:7,}"
        )
    lines.append("  confusion (rows: true label, columns: predicted, in the order above)")
    for label, row in zip(labels, result["confusion"], strict=True):
        lines.append(f"  {label:<{width}}  " + " ".join(f"{n:6,}" for n in row))
    if result["unknown"]:
        lines.append(
            f"  unknown     {result['unknown']:,} character(s) outside the vocabulary, "
            "read as <unk>"
        )
    return lines


def translations(result: dict) -> list[str]:
    """charrnn.metrics.score_seq2seq's result, or scores of outputs without a model."""
    what = result.get("data") or result.get("hyp")
    beam = f", beam {result['beam_size']}" if "beam_size" in result else ""
    lines = [
        f"{result.get('checkpoint', 'hypotheses')} on {what}: {result['sentences']:,} "
        f"sentences{beam}",
        f"  BLEU        {result['bleu']:.2f}   {result['bleu_signature']}",
        f"  chrF        {result['chrf']:.2f}   {result['chrf_signature']}",
        f"  ROUGE-1/2/L {result['rouge1']:.2f} / {result['rouge2']:.2f} / "
        f"{result['rougeL']:.2f}   (rouge-score F1, mean over sentences)",
        f"  exact match {result['exact_match']:.2f}%",
    ]
    if result.get("unknown"):  # sources in another script than the vocabulary, say
        lines.append(
            f"  unknown     {result['unknown']:,} source character(s) outside the model's "
            "vocabulary, read as <unk>"
        )
    if "loss" in result:
        lines += ["  on the references (teacher forced):", *loss_lines(result)]
    if "attention_entropy" in result:
        lines.append(
            f"  attention   entropy {result['attention_entropy']:.3f} of the most possible, "
            f"{result['attention_on_end']:.3f} of the weight on the source's end token"
        )
    return lines


# -- data directories: `charrnn tokenize` and `info` ------------------------------------------


def text_data(summary: dict, verb: str) -> list[str]:
    """A data directory of plain text (charrnn.data.describe's summary)."""
    lines = []
    v = summary["vocab"]
    extra = ", lowercase" if v["lowercase"] else ""
    extra += f", {v['normalize'].upper()}" if v["normalize"] != "none" else ""
    lines.append(
        f"{verb} {summary['path']}: {v['kind']} vocabulary of {v['size']:,} tokens "
        f"(4 special){extra}, ids as {summary['dtype']}, {summary['sources']} source file(s)"
    )
    for name, s in summary["splits"].items():
        unk = f", {s['unknown']:,} unknown" if s["unknown"] else ""
        lines.append(
            f"  {name:<5} {s['tokens']:>13,} tokens {s['chars']:>13,} chars "
            f"{s['bytes']:>13,} bytes{unk}"
        )
    if summary["unknown_chars"]:
        shown = ", ".join(f"{c!r} x{n}" for c, n in list(summary["unknown_chars"].items())[:8])
        lines.append(f"  characters not in the vocabulary: {shown}")
    top = "  ".join(f"{c['char']!r} {100 * c['fraction']:.1f}%" for c in summary["top_chars"])
    lines.append(
        f"  top characters: {top}  (together {100 * summary['top_coverage']:.1f}% of train)"
    )
    return lines


def parallel_data(summary: dict, verb: str) -> list[str]:
    """A data directory of parallel text (charrnn.pairs.describe_pairs's summary)."""
    lines = []
    v = summary["vocab"]
    shared = ", shared" if v["shared"] else ""
    lines.append(
        f"{verb} {summary['path']}: parallel text, {v['source']['kind']} vocabularies of "
        f"{v['source']['size']:,} (source) and {v['target']['size']:,} (target) tokens{shared}"
    )
    if v.get("picked"):
        lines.append(f"  vocabulary picked by --vocab auto: {v['picked']}")
    for name, s in summary["splits"].items():
        src, tgt = s["source"], s["target"]
        unknown = [f"{s[side]['unknown']:,} {side}" for side in ("source", "target")]
        extra = f", unknown {' / '.join(unknown)}" if src["unknown"] or tgt["unknown"] else ""
        lines.append(
            f"  {name:<5} {s['pairs']:>9,} pairs  source {src['tokens']:>9,} tokens "
            f"{src['chars']:>9,} chars  target {tgt['tokens']:>9,} tokens "
            f"{tgt['chars']:>9,} chars{extra}"
        )
    for side in ("source", "target"):
        missing = summary.get("unknown_chars", {}).get(side)
        if missing:
            shown = ", ".join(f"{c!r} x{n}" for c, n in list(missing.items())[:8])
            lines.append(f"  {side} characters not in the vocabulary: {shown}")
        top = summary.get("top_chars", {}).get(side)
        if top:
            shares = "  ".join(f"{c['char']!r} {100 * c['fraction']:.1f}%" for c in top[:8])
            lines.append(f"  top {side} characters: {shares}")
    f = summary["filtered"]
    if f["empty"] or f["too_long"]:
        lines.append(
            f"  filtered: {f['empty']:,} with an empty side, {f['too_long']:,} longer than "
            f"{f['max_chars']:,} characters"
        )
    return lines


def labelled_data(summary: dict, verb: str) -> list[str]:
    """A data directory of labelled text (charrnn.labels.describe_labels's summary)."""
    lines = []
    v = summary["vocab"]
    labels = summary["labels"]
    lines.append(
        f"{verb} {summary['path']}: labelled text, {len(labels):,} labels, {v['kind']} "
        f"vocabulary of {v['size']:,} tokens (4 special), ids as {summary['dtype']}, "
        f"{summary['sources']:,} source file(s), split: {summary['split_method']}"
    )
    splits = summary["splits"]
    for name, s in splits.items():
        unk = f", {s['unknown']:,} unknown" if s["unknown"] else ""
        lines.append(
            f"  {name:<5} {s['examples']:>9,} examples {s['tokens']:>11,} tokens "
            f"{s['chars']:>11,} chars{unk}"
        )
    width = min(max(len(label) for label in labels), 40)
    lines.append(f"  {'label':<{width}} " + " ".join(f"{name:>9}" for name in splits))
    shown = labels if len(labels) <= MAX_LABELS_SHOWN else labels[: MAX_LABELS_SHOWN - 1]
    for label in shown:
        counts = " ".join(f"{s['labels'][label]:>9,}" for s in splits.values())
        lines.append(f"  {label[:width]:<{width}} {counts}")
    if len(shown) < len(labels):
        lines.append(f"  ... and {len(labels) - len(shown):,} more labels (--json lists them all)")
    if summary["unknown_chars"]:
        missing = ", ".join(f"{c!r} x{n}" for c, n in list(summary["unknown_chars"].items())[:8])
        lines.append(f"  characters not in the vocabulary: {missing}")
    return lines
