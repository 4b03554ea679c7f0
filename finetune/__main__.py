"""`python -m finetune <command>`: probe the base model, build RAFT data, train an adapter, evaluate it."""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from dataclasses import fields, replace
from pathlib import Path

from app.components import build_retriever
from app.config import Settings
from app.embedding import build_embedder
from app.generation import TextGenerator
from app.generation.transformers_backend import TransformersGenerator, load_causal_lm
from app.logs import configure_logging
from app.prompt import load_template
from app.store import Store, open_store
from evaluation.metrics import markdown_table
from finetune.data import build_examples, generate_pairs, indexed_chunks, label_mix, load_pairs, split
from finetune.records import Example, ProbeResult, read_jsonl, write_jsonl
from finetune.train import TrainConfig, add_metrics_to_card, train

log = logging.getLogger("finetune")

METRICS = ["answer_f1", "exact_match", "citation_accuracy", "refusal_accuracy", "general_f1"]


def base_generator(settings: Settings, adapter: Path | None = None) -> TransformersGenerator:
    """The configured base model with `adapter` (or none), whichever adapters the service serves."""
    return TransformersGenerator(settings.generator.with_only_adapter(adapter), settings.storage.model_cache_dir)


def existing_store(settings: Settings) -> Store:
    path = settings.storage.database_path
    if not path.is_file():
        raise SystemExit(f"no database at {path}: point --data-dir at the data dir of a service with indexed documents")
    return open_store(settings.storage)


def run_pairs(args: argparse.Namespace, settings: Settings) -> None:
    chunks = indexed_chunks(existing_store(settings))[: args.limit]
    teacher: TextGenerator
    if args.teacher_url:
        from finetune.teacher import EndpointTeacher

        teacher = EndpointTeacher(args.teacher_url, args.teacher or "default")
    else:
        if args.teacher:
            settings = settings.model_copy(
                update={"generator": settings.generator.model_copy(update={"model": args.teacher})}
            )
        teacher = base_generator(settings)
    try:
        pairs = generate_pairs(teacher, chunks, args.per_chunk)
    except RuntimeError as exc:  # an endpoint that is down or answers something else
        raise SystemExit(str(exc)) from exc
    write_jsonl(args.out, pairs)
    print(f"{len(pairs)} pairs from {len(chunks)} chunks written to {args.out}")


def run_probe(args: argparse.Namespace, settings: Settings) -> None:
    from finetune.probe import label_counts, probe_pairs

    pairs = [pair for path in args.pairs for pair in load_pairs(path)]
    generator = settings.generator
    results = probe_pairs(
        load_causal_lm(generator.model, generator.device, settings.storage.model_cache_dir),
        pairs,
        shots=args.shots,
        samples=args.samples,
        temperature=args.temperature,
        seed=args.seed,
    )
    write_jsonl(args.out, results)
    rows = [{"label": label, "pairs": n} for label, n in label_counts(results).items()]
    print(markdown_table(rows, ["label", "pairs"]))
    print(f"{len(results)} labels written to {args.out}")


def run_data(args: argparse.Namespace, settings: Settings) -> None:
    labels = None
    if args.labels:
        labels = {result.id: result.label for result in read_jsonl(args.labels, ProbeResult)}
    store = existing_store(settings)
    retriever = build_retriever(settings, store, build_embedder(settings.embedding, settings.storage.model_cache_dir))
    pairs = load_pairs(args.pairs)
    examples = build_examples(
        pairs,
        store,
        retriever,
        template=load_template(settings.generator.prompt_template),
        distractors=args.distractors,
        no_oracle_share=args.no_oracle_share,
        seed=args.seed,
        labels=labels,
    )
    train_set, held_out = split(examples, args.held_out, args.seed)
    write_jsonl(args.out / "train.jsonl", train_set)
    write_jsonl(args.out / "held_out.jsonl", held_out)
    rows = [{"label": label, **counts} for label, counts in label_mix(examples).items()]
    print(markdown_table(rows, ["label", "oracle", "no_oracle"]))
    print(
        f"{len(examples)} examples from {len(pairs)} pairs: {len(train_set)} train, {len(held_out)} held out,"
        f" written to {args.out}/train.jsonl and held_out.jsonl"
    )


def run_reader_data(args: argparse.Namespace, settings: Settings) -> None:
    """RAFT examples over several corpora (folders of questions.jsonl + documents/), each indexed on its own
    by the real worker, so that distractors come from the same corpus as the oracle."""
    from evaluation.datasets import load_eval_set
    from evaluation.run import ingest

    labels = None
    if args.labels:
        labels = {result.id: result.label for result in read_jsonl(args.labels, ProbeResult)}
    template = load_template(settings.generator.prompt_template)
    embedder = build_embedder(settings.embedding, settings.storage.model_cache_dir)
    train_set, held_out = [], []
    for corpus in args.corpus:
        with tempfile.TemporaryDirectory(prefix="docqa-reader-") as data_dir:
            corpus_settings = settings.with_data_dir(Path(data_dir))
            store = ingest(load_eval_set(corpus), corpus_settings, embedder)
            retriever = build_retriever(corpus_settings, store, embedder)
            pairs = load_pairs(corpus / "questions.jsonl", unanswerable=True)
            examples = build_examples(
                pairs,
                store,
                retriever,
                template=template,
                distractors=args.distractors,
                no_oracle_share=args.no_oracle_share,
                seed=args.seed,
                labels=labels,
            )
            store.close()
        train_part, held_part = split(examples, args.held_out, args.seed)
        train_set += train_part
        held_out += held_part
        rows = [{"label": label, **counts} for label, counts in label_mix(examples).items()]
        print(f"{corpus}: {len(examples)} examples from {len(pairs)} pairs")
        print(markdown_table(rows, ["label", "oracle", "no_oracle"]))
    write_jsonl(args.out / "train.jsonl", train_set)
    write_jsonl(args.out / "held_out.jsonl", held_out)
    print(f"{len(train_set)} train, {len(held_out)} held out, written to {args.out}/train.jsonl and held_out.jsonl")


def run_train(args: argparse.Namespace, settings: Settings) -> None:
    # Flags are named after TrainConfig's fields; those left out keep the dataclass defaults.
    names = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in names and v is not None})
    examples = read_jsonl(args.examples, Example)
    if args.labels:  # the probe's knowledge labels, recorded per example and as a mix in the adapter card
        known = {result.id: result.label for result in read_jsonl(args.labels, ProbeResult)}
        examples = [replace(example, label=known.get(example.id, example.label)) for example in examples]
    held_out = read_jsonl(args.held_out, Example) if args.held_out else None
    cache_dir = settings.storage.model_cache_dir
    result = train(settings.generator, cache_dir, examples, config, resume=args.resume, held_out=held_out)
    print(json.dumps(result, indent=2))


def run_evaluate(args: argparse.Namespace, settings: Settings) -> None:
    from finetune.evaluate import evaluate_examples

    examples = read_jsonl(args.examples, Example)[: args.limit]
    general = load_pairs(args.general) if args.general else None
    rows = {"base": evaluate_examples(base_generator(settings), examples, general_questions=general)}
    if args.adapter:
        adapted = base_generator(settings, args.adapter)
        rows["adapter"] = evaluate_examples(adapted, examples, general_questions=general)
        add_metrics_to_card(args.adapter, {"held_out": {"examples": len(examples), **rows}})
    columns = dict.fromkeys([*METRICS, *(name for metrics in rows.values() for name in metrics)])
    print(markdown_table([{"model": model, **metrics} for model, metrics in rows.items()], ["model", *columns]))


def run_gguf(args: argparse.Namespace, settings: Settings) -> None:
    from app.generation.gguf import lora_to_gguf
    from app.packaged import is_packaged, resolve_packaged

    base = args.base
    if base is None:
        if not is_packaged(settings.generator.model):
            raise SystemExit(f"--base: the GGUF file of {settings.generator.model} is needed")
        folder, name = resolve_packaged(settings.generator.model)
        base = folder / name
    try:
        count = lora_to_gguf(args.adapter, base, args.out)
    except (OSError, ValueError) as exc:
        raise SystemExit(str(exc)) from exc
    print(f"{count} adapted weight matrices written to {args.out}, for {base}")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m finetune", description=__doc__)
    commands = main.add_subparsers(dest="command", required=True)

    pairs = commands.add_parser("pairs", help="a teacher model writes question/answer pairs from the indexed chunks")
    pairs.add_argument("--data-dir", type=Path, help="the service's data dir (default: the configured one)")
    pairs.add_argument("--out", type=Path, required=True, help="pairs JSONL to write")
    pairs.add_argument("--per-chunk", type=int, default=2)
    pairs.add_argument("--teacher", help="model id or path of the teacher (default: the configured generator)")
    pairs.add_argument(
        "--teacher-url",
        help="an OpenAI-compatible endpoint (e.g. http://localhost:11434/v1) that serves --teacher as its model;"
        " OPENAI_API_KEY is sent when set",
    )
    pairs.add_argument("--limit", type=int, help="first N chunks only")
    pairs.set_defaults(run=run_pairs)

    probe = commands.add_parser("probe", help="label what the base model knows closed-book (Gekhman et al. 2024)")
    probe.add_argument(
        "--pairs", type=Path, action="append", required=True, help="JSONL: question, answer, source?, id? (repeatable)"
    )
    probe.add_argument("--out", type=Path, required=True, help="labels JSONL to write")
    probe.add_argument("--shots", type=int, default=4)
    probe.add_argument("--samples", type=int, default=8)
    probe.add_argument("--temperature", type=float, default=0.7)
    probe.add_argument("--seed", type=int, default=0)
    probe.set_defaults(run=run_probe)

    data = commands.add_parser("data", help="RAFT examples from pairs and the current index, split train/held out")
    data.add_argument("--pairs", type=Path, required=True, help="JSONL: question, answer, source?, id?")
    data.add_argument("--data-dir", type=Path, help="the service's data dir (default: the configured one)")
    data.add_argument("--labels", type=Path, help="labels JSONL from `probe`")
    data.add_argument("--out", type=Path, required=True, help="folder for train.jsonl and held_out.jsonl")
    data.add_argument("--distractors", type=int, default=3)
    data.add_argument("--no-oracle-share", type=float, default=0.2, help="share of examples without the oracle")
    data.add_argument("--held-out", type=float, default=0.2, help="share of examples held out for evaluation")
    data.add_argument("--seed", type=int, default=0)
    data.set_defaults(run=run_data)

    reader = commands.add_parser(
        "reader-data", help="RAFT examples over several corpora, each indexed by the worker (worker environment)"
    )
    reader.add_argument(
        "--corpus", type=Path, action="append", required=True, help="folder: questions.jsonl, documents/"
    )
    reader.add_argument("--labels", type=Path, help="labels JSONL from `probe`")
    reader.add_argument("--out", type=Path, required=True, help="folder for train.jsonl and held_out.jsonl")
    reader.add_argument("--distractors", type=int, default=3)
    reader.add_argument("--no-oracle-share", type=float, default=0.1, help="share of answerable pairs without oracle")
    reader.add_argument("--held-out", type=float, default=0.15, help="share of examples held out for evaluation")
    reader.add_argument("--seed", type=int, default=0)
    reader.set_defaults(run=run_reader_data)

    fit = commands.add_parser("train", help="train a LoRA or prompt-tuning adapter on train.jsonl")
    fit.add_argument("--examples", type=Path, required=True, help="examples JSONL from `data`")
    fit.add_argument("--out", dest="output", type=Path, required=True, help="adapter folder (checkpoints inside)")
    fit.add_argument("--method", choices=["lora", "prompt-tuning"])
    fit.add_argument("--steps", type=int)
    fit.add_argument("--lr", type=float, help="default: 2e-4 for LoRA, 3e-2 for prompt tuning")
    fit.add_argument("--r", type=int)
    fit.add_argument("--alpha", type=int)
    fit.add_argument("--dropout", type=float)
    fit.add_argument("--target-modules", type=lambda s: s.split(","), help="comma-separated (default q,k,v,o_proj)")
    fit.add_argument("--mlp", action="store_true", default=None, help="also adapt gate/up/down_proj")
    fit.add_argument("--virtual-tokens", dest="num_virtual_tokens", type=int, help="prompt tuning only")
    fit.add_argument("--batch-size", type=int)
    fit.add_argument("--grad-accum", type=int)
    fit.add_argument("--max-length", type=int)
    fit.add_argument("--warmup-steps", type=int)
    fit.add_argument("--save-every", type=int)
    fit.add_argument("--seed", type=int)
    fit.add_argument("--labels", type=Path, help="labels JSONL from `probe`, copied onto the examples")
    fit.add_argument("--held-out", type=Path, help="held_out.jsonl from `data`: its answer loss is tracked")
    fit.add_argument("--eval-every", type=int, help="steps between held-out loss measurements (default 50)")
    fit.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    fit.set_defaults(run=run_train)

    evaluate = commands.add_parser("evaluate", help="held-out metrics of the base model, and with --adapter")
    evaluate.add_argument("--examples", type=Path, required=True, help="held_out.jsonl from `data`")
    evaluate.add_argument("--adapter", type=Path, help="adapter folder from `train` (its card gets the metrics)")
    evaluate.add_argument("--general", type=Path, help="pairs JSONL of general questions (what the adapter forgets)")
    evaluate.add_argument("--limit", type=int, help="first N examples only")
    evaluate.set_defaults(run=run_evaluate)

    export = commands.add_parser("gguf", help="a LoRA adapter as a GGUF file for llama.cpp (its server, Ollama)")
    export.add_argument("--adapter", type=Path, required=True, help="adapter folder from `train`")
    export.add_argument("--out", type=Path, required=True, help="the .gguf file to write")
    export.add_argument("--base", type=Path, help="the base model's GGUF (default: the packaged generator's)")
    export.set_defaults(run=run_gguf)
    return main


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    configure_logging()
    settings = Settings()
    if getattr(args, "data_dir", None) is not None:
        settings = settings.with_data_dir(args.data_dir)
    args.run(args, settings)


if __name__ == "__main__":
    main()
