"""The `fwdtui` command: the app by default, and plain-text subcommands for scripts and slow links."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from fwdtui.errors import FwdtuiError

SUBCOMMANDS = ("models", "download", "tokenize", "generate", "step", "chapters", "bench", "screenshots")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1 or value > 1_000_000:
        raise argparse.ArgumentTypeError(f"{value} is out of range (1 to 1000000)")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0 or value > 10_000_000:
        raise argparse.ArgumentTypeError(f"{value} is out of range (0 to 10000000)")
    return value


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"{value} is out of range (0 = greedy, up to 100)")
    return value


def _top_p(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} must be above 0 and at most 1")
    return value


def _progress_printer(stream=sys.stderr):
    """A progress callback that redraws one line: stage, bytes done, percent."""
    state = {"last": "", "used": False}

    def report(stage: str, done: int, total: int | None) -> None:
        if total and total >= 1 << 16:  # byte counts
            line = f"\r{stage}: {done / 1e6:8.1f} / {total / 1e6:.1f} MB ({100 * done / total:5.1f}%)"
        elif total:  # item counts (tensors, files)
            line = f"\r{stage}: {done}/{total}"
        else:
            line = f"\r{stage}" + (f": {done / 1e6:.1f} MB" if done else "")
        if line != state["last"]:
            stream.write(line[:79].ljust(79))
            stream.flush()
            state["last"] = line
            state["used"] = True

    report.used = lambda: state["used"]  # type: ignore[attr-defined]
    return report


def resolve_model(spec: str | None, fetch: bool = True, quiet: bool = False):
    """Load `spec`, or the default model: gpt2 if present, else smollm2-135m, else download one."""
    from fwdtui import load_model
    from fwdtui.errors import DownloadError, ModelNotFoundError
    from fwdtui.loaders import registry

    progress = None if quiet else _progress_printer()
    if spec:
        model = load_model(spec, progress=progress)
    else:
        name = registry.default_model_name()
        if name is None:
            if not fetch:
                raise ModelNotFoundError("No model is downloaded yet.", "Run `fwdtui download smollm2-135m` (or gpt2).")
            from fwdtui.loaders.download import download

            errors = []
            for candidate in ("gpt2", "smollm2-135m"):
                try:
                    if not quiet:
                        print(f"No model here yet: fetching {candidate} ...", file=sys.stderr)
                    download(candidate, progress=progress)
                    name = candidate
                    break
                except DownloadError as err:
                    errors.append(f"{candidate}: {err.message}")
                    if not quiet:
                        print(f"\n{candidate} could not be fetched: {err.message}", file=sys.stderr)
            if name is None:
                raise DownloadError(
                    "No model could be downloaded (" + "; ".join(errors) + ").",
                    "Check the network, or pass --model PATH to a model folder or .gguf file you already have.",
                )
        model = load_model(name, progress=progress)
    if progress is not None and progress.used():
        sys.stderr.write("\r" + " " * 79 + "\r")
    return model


def cmd_models(args: argparse.Namespace) -> int:
    from fwdtui.loaders import registry
    from fwdtui.loaders.paths import weights_dir

    rows = registry.list_models()
    if args.json:
        print(json.dumps([{"name": s.spec.name, "family": s.spec.family, "params": s.spec.n_params,
                           "present": s.present, "path": str(s.path) if s.path else None, "source": s.source,
                           "description": s.spec.description, "licence": s.spec.licence} for s in rows], indent=2))
        return 0
    print(f"weights folder: {weights_dir(create=False)}")
    default = registry.default_model_name()
    for s in rows:
        mark = "*" if s.spec.name == default else (" " if not s.present else "+")
        state = f"present ({s.path})" if s.present else "not downloaded"
        print(f"{mark} {s.spec.name:<14} {s.spec.family:<6} {s.spec.n_params / 1e6:>6.0f}M  {state}")
        print(f"  {'':<14} {s.spec.description}")
        print(f"  {'':<14} from: {s.source}")
    print("(* default; + present)  Get one with: fwdtui download NAME")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from fwdtui.loaders.download import download
    from fwdtui.loaders.registry import get_spec

    get_spec(args.name)  # unknown names fail here, with the list of known ones
    path = download(args.name, dest=args.dest, progress=_progress_printer())
    print(f"\n{args.name} is ready at {path}")
    return 0


def _tokenizer_model(args: argparse.Namespace):
    return resolve_model(args.model, fetch=True, quiet=getattr(args, "json", False))


def cmd_tokenize(args: argparse.Namespace) -> int:
    from fwdtui.prompt import clean_text
    from fwdtui.steptext import piece

    model = _tokenizer_model(args)
    text, notices = clean_text(args.text)
    for note in notices:
        print(f"note: {note}", file=sys.stderr)
    tok = model.tokenizer
    if tok is None:
        raise FwdtuiError("This model has no tokenizer files.", "Add vocab.json + merges.txt or tokenizer.json to its folder.")
    ids = tok.encode(text)
    rows, offset = [], 0
    for t in ids:
        raw = tok.token_bytes(t)
        rows.append({"id": t, "bytes": list(raw), "start": offset, "end": offset + len(raw), "text": piece(model, t)})
        offset += len(raw)
    if args.json:
        print(json.dumps({"model": model.info.name, "n_tokens": len(ids), "ids": ids, "tokens": rows},
                         ensure_ascii=False, indent=2))
        return 0
    print(f"{len(ids)} tokens ({len(text.encode('utf-8'))} bytes, {len(text)} characters) with {model.info.name}")
    for r in rows:
        print(f"{r['id']:>7}  bytes {r['start']:>4}-{r['end']:<4} {r['text']}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from fwdtui.prompt import prepare_prompt

    model = resolve_model(args.model)
    text = args.prompt
    if args.chat:
        from fwdtui.tokenizers.chat import apply_chat_template

        text = apply_chat_template(model.tokenizer, [{"role": "user", "content": args.prompt}])
        ids = model.tokenizer.encode_with_special(text)
        ids = ids[-max(1, model.config.n_ctx - args.max_new_tokens):]
    else:
        prepared = prepare_prompt(model, text, reserve=args.max_new_tokens)
        for note in prepared.notices:
            print(f"note: {note}", file=sys.stderr)
        ids = prepared.ids
        sys.stdout.write(prepared.text)
    stop = set()
    if model.tokenizer is not None and model.tokenizer.eos_id is not None:
        stop.add(model.tokenizer.eos_id)
    if args.chat and model.tokenizer is not None:
        stop |= {i for s, i in model.tokenizer.special_tokens.items() if s in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>")}
    pending: list[int] = []
    for token in model.generate(ids, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                                top_p=args.top_p, seed=args.seed):
        if token in stop:
            break
        pending.append(token)
        piece = model.tokenizer.decode(pending)
        if "\ufffd" not in piece[-1:]:  # wait until a multi-byte character is complete
            sys.stdout.write(piece)
            sys.stdout.flush()
            pending = []
    if pending:
        sys.stdout.write(model.tokenizer.decode(pending))
    sys.stdout.write("\n")
    return 0


def cmd_step(args: argparse.Namespace) -> int:
    from fwdtui.prompt import prepare_prompt
    from fwdtui.steptext import step_lines

    model = resolve_model(args.model)
    prepared = prepare_prompt(model, args.prompt)
    for note in prepared.notices:
        print(f"note: {note}")
    trace = model.trace(prepared.ids)
    for line in step_lines(model, prepared.ids, trace, top=args.top):
        print(line)
    return 0


def cmd_chapters(args: argparse.Namespace) -> int:
    from fwdtui.chapters import chapter_table

    rows = chapter_table()
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    section = None
    for row in rows:
        if row["section"] != section:
            section = row["section"]
            print(row["section_title"])
        print(f"  {row['id']:<32} {row['title']}{'' if row['written'] else '  (not written yet)'}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from fwdtui.bench import main as bench_main

    return bench_main(args)


def cmd_screenshots(args: argparse.Namespace) -> int:
    from fwdtui.screenshots import main as shots_main

    return shots_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fwdtui",
        description="See everything between a prompt and the next token, live on a real model. "
                    "Without a subcommand, opens the app (optionally at CHAPTER).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("models", help="known and locally present models, and where each comes from")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("download", help="fetch a model's weights into weights/")
    p.add_argument("name", help="gpt2, distilgpt2, gpt2-medium, gpt2-large, gpt2-xl or smollm2-135m")
    p.add_argument("--dest", default=None, help="folder to download into (default: weights/NAME)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("tokenize", help="token ids, strings and byte spans of TEXT")
    p.add_argument("text")
    p.add_argument("--model", "-m", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("generate", help="stream a continuation of PROMPT")
    p.add_argument("prompt")
    p.add_argument("--model", "-m", default=None)
    p.add_argument("--max-new-tokens", "-n", type=_positive_int, default=40)
    p.add_argument("--temperature", "-t", type=_temperature, default=0.8)
    p.add_argument("--top-k", type=_nonneg_int, default=0, help="keep the k likeliest tokens (0: off)")
    p.add_argument("--top-p", type=_top_p, default=1.0, help="keep the smallest set with this much probability")
    p.add_argument("--seed", type=_nonneg_int, default=None)
    p.add_argument("--chat", action="store_true", help="wrap PROMPT in the model's chat template")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("step", help="the forward pass on PROMPT, stage by stage, as plain text")
    p.add_argument("prompt")
    p.add_argument("--model", "-m", default=None)
    p.add_argument("--top", type=_positive_int, default=5)
    p.set_defaults(func=cmd_step)

    p = sub.add_parser("chapters", help="every chapter's id, section and title")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_chapters)

    p = sub.add_parser("bench", help="load, prefill and decode speed of the loaded model")
    p.add_argument("--model", "-m", default=None, help="a model name or path (default: GPT-2 124M shape, random weights)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--compare", choices=["transformers"], default=None)
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("screenshots", help="regenerate the SVG screenshots in screenshots/")
    p.add_argument("--out", default="screenshots")
    p.set_defaults(func=cmd_screenshots)
    return parser


def build_app_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fwdtui", description="Open the app (at CHAPTER if given).",
                                     epilog="Subcommands: " + ", ".join(SUBCOMMANDS) + " (fwdtui COMMAND --help)")
    parser.add_argument("chapter", nargs="?", default=None, help="a chapter id (see `fwdtui chapters`)")
    parser.add_argument("--model", "-m", default=None, help="model name or path (default: gpt2, else smollm2-135m)")
    parser.add_argument("--prompt", default=None, help="the prompt to start with")
    return parser


def open_app(argv: Sequence[str]) -> int:
    args = build_app_parser().parse_args(argv)
    if args.chapter is not None:
        from fwdtui.chapters import find_chapter

        args.chapter = find_chapter(args.chapter).ID  # unknown or unwritten ids fail here, with the fix
    from fwdtui.app import run_app

    run_app(chapter_id=args.chapter, model_spec=args.model, prompt=args.prompt)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            args = build_parser().parse_args(argv)
            return args.func(args)
        if argv and argv[0] in ("-h", "--help"):
            build_parser().print_help()
            print("\nWithout a COMMAND: fwdtui [CHAPTER] [--model M] [--prompt TEXT] opens the app.")
            return 0
        if argv and argv[0] == "--version":
            from fwdtui import __version__

            print(f"fwdtui {__version__}")
            return 0
        return open_app(argv)
    except FwdtuiError as err:
        print(f"error: {err.message}", file=sys.stderr)
        if err.fix:
            print(f"  fix: {err.fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
