"""The `fwdtui` command: the app by default, and plain-text subcommands for scripts and slow links."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from fwdtui.errors import FwdtuiError

SUBCOMMANDS = ("models", "download", "tokenize", "generate", "step", "chapters", "check", "bench", "screenshots")


def _one_line(text: str) -> str:
    """`text` with control characters escaped: a \\r or an escape sequence typed in an argument
    must not move the cursor or recolour the terminal when an error message echoes it."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is reported like every other error: what was wrong, then the fix."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {_one_line(message)}\n  fix: run `{self.prog} --help` to see what each argument takes.\n")


def _number(kind: Callable[[str], int | float], ok: Callable[[float], bool],
            out_of_range: str) -> Callable[[str], int | float]:
    """An argparse type: the text read as `kind` (int or float), kept when `ok(value)`; otherwise an
    error naming the problem (`out_of_range` with the value put in for `{value}`)."""
    noun = "a whole number" if kind is int else "a number"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(out_of_range.format(value=value))
        return value

    return parse


_positive_int = _number(int, lambda v: 1 <= v <= 1_000_000, "{value} is out of range (1 to 1000000)")
_nonneg_int = _number(int, lambda v: 0 <= v <= 10_000_000, "{value} is out of range (0 to 10000000)")
_temperature = _number(float, lambda v: 0.0 <= v <= 100.0, "{value} is out of range (0 = greedy, up to 100)")
_top_p = _number(float, lambda v: 0.0 < v <= 1.0, "{value} must be above 0 and at most 1")


def _progress_printer(stream=None):
    """A progress callback that redraws one line: stage, bytes done, percent.

    When the stream is not a terminal (a log file, a pipe) there is nothing to redraw: each new
    stage is written once, on its own line, and the byte counts are left out.
    """
    stream = stream or sys.stderr
    state = {"last": "", "used": False}
    interactive = bool(getattr(stream, "isatty", lambda: False)())

    def report(stage: str, done: int, total: int | None) -> None:
        if not interactive:
            if stage != state["last"]:
                stream.write(stage + "\n")
                stream.flush()
                state["last"] = stage
            return
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


class _ProgressLine:
    """A progress printer for a `with` block; on the way out, even by an error, its line is wiped
    so that what follows (the result, or `error: ...`) starts at the left edge."""

    def __init__(self, quiet: bool = False, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.report = None if quiet else _progress_printer(self.stream)

    def __enter__(self):
        return self.report

    def __exit__(self, *exc: object) -> None:
        if self.report is not None and self.report.used():
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()


def resolve_model(spec: str | None, fetch: bool = True, quiet: bool = False):
    """Load `spec`, or the default model: gpt2 if present, else smollm2-135m, else download one."""
    with _ProgressLine(quiet) as progress:
        return _resolve_model(spec, fetch, quiet, progress)


def _resolve_model(spec: str | None, fetch: bool, quiet: bool, progress):
    from fwdtui import load_model
    from fwdtui.errors import DownloadError, ModelNotFoundError
    from fwdtui.loaders import registry

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
    with _ProgressLine() as progress:
        path = download(args.name, dest=args.dest, progress=progress)
    print(f"{args.name} is ready at {path}")
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
    from fwdtui.tokenizers import text_pieces

    ids = tok.encode(text)
    rows, offset = [], 0
    for t, in_text in zip(ids, text_pieces(tok, ids)):  # spans in the text's bytes; "bytes" are the token's own
        rows.append({"id": t, "bytes": list(tok.token_bytes(t)), "start": offset, "end": offset + len(in_text),
                     "text": piece(model, t)})
        offset += len(in_text)
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
        from fwdtui.prompt import clean_text
        from fwdtui.tokenizers.chat import encode_chat

        if model.tokenizer is None:
            raise FwdtuiError("This model has no tokenizer files.", "Add vocab.json + merges.txt or tokenizer.json to its folder.")
        text, notices = clean_text(args.prompt)
        for note in notices:
            print(f"note: {note}", file=sys.stderr)
        ids = encode_chat(model.tokenizer, [{"role": "user", "content": text}])
        keep = max(1, model.config.n_ctx - min(args.max_new_tokens, model.config.n_ctx // 2))
        if len(ids) > keep:
            print(f"note: the chat had {len(ids)} tokens, more than the {keep} that fit; the first "
                  f"{len(ids) - keep} were dropped.", file=sys.stderr)
            ids = ids[-keep:]
    else:
        prepared = prepare_prompt(model, text, reserve=args.max_new_tokens)
        for note in prepared.notices:
            print(f"note: {note}", file=sys.stderr)
        ids = prepared.ids
    room = model.config.n_ctx - len(ids)
    if args.max_new_tokens > room:
        print(f"note: only {room} new tokens fit in the {model.config.n_ctx}-token context after the prompt; "
              f"generation stops there (asked for {args.max_new_tokens}).", file=sys.stderr)
    if not args.chat:
        sys.stdout.write(prepared.text)  # the notes above are on stderr: print them before the text starts
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
        if token >= model.tokenizer.n_vocab:
            continue  # an embedding row with no token behind it (padded vocabularies): nothing to print
        pending.append(token)
        # token by token: decode() would drop the leading space of each SentencePiece piece
        piece = model.tokenizer.decode_bytes(pending).decode("utf-8", errors="replace")
        if "\ufffd" not in piece[-1:]:  # wait until a multi-byte character is complete
            sys.stdout.write(piece)
            sys.stdout.flush()
            pending = []
    if pending:
        sys.stdout.write(model.tokenizer.decode_bytes(pending).decode("utf-8", errors="replace"))
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


def cmd_check(args: argparse.Namespace) -> int:
    from fwdtui.core.reference import SUITE_CHECK, TOLERANCE, check

    model = resolve_model(args.model)
    result = check(model)
    if result is None:
        print(f"{model.info.name}: no stored reference for these weights. {SUITE_CHECK}.")
        return 0
    def piece(token: int) -> str:
        return repr(model.tokenizer.decode([token])) if model.tokenizer is not None else f"id {token}"

    print(f"{model.info.name}: our logits {result.summary()}.")
    print(f"  next token: ours {piece(result.our_top)}, theirs {piece(result.their_top)}; "
          f"tolerance {TOLERANCE:.0e} (float32 summation order).")
    return 0 if result.ok else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from fwdtui.bench import main as bench_main

    return bench_main(args)


def cmd_screenshots(args: argparse.Namespace) -> int:
    from fwdtui.screenshots import main as shots_main

    return shots_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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

    p = sub.add_parser("check", help="compare the model's logits with a stored transformers reference")
    p.add_argument("--model", "-m", default=None, help="a model name or path (default: the one fwdtui opens)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("bench", help="load, prefill and decode speed of the loaded model")
    p.add_argument("--model", "-m", default=None, help="a model name or path (default: GPT-2 124M shape, random weights)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--compare", choices=["transformers"], default=None)
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="limit numpy's BLAS (and torch, with --compare) to N threads (needs threadpoolctl)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("screenshots", help="regenerate the SVG screenshots in screenshots/")
    p.add_argument("--out", default="screenshots")
    p.set_defaults(func=cmd_screenshots)
    return parser


def build_app_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fwdtui", description="Open the app (at CHAPTER if given).",
                                     epilog="Subcommands: " + ", ".join(SUBCOMMANDS) + " (fwdtui COMMAND --help)")
    parser.add_argument("chapter", nargs="?", default=None, help="a chapter id (see `fwdtui chapters`)")
    parser.add_argument("--model", "-m", default=None, help="model name or path (default: gpt2, else smollm2-135m)")
    parser.add_argument("--prompt", default=None, help="the prompt to start with")
    return parser


def check_model_spec(spec: str) -> None:
    """Fail now, with the fix, when `spec` is neither a known model name nor an existing path."""
    from fwdtui.errors import ModelNotFoundError
    from fwdtui.loaders import registry, user_path

    if spec in registry.MODELS or user_path(spec).exists():
        return
    raise ModelNotFoundError(
        f"No model called {spec!r}, and no such file or folder.",
        f"Use one of: {', '.join(registry.MODELS)}; or a path to a model folder or .gguf file.",
    )


def open_app(argv: Sequence[str]) -> int:
    parser = build_app_parser()
    args, extra = parser.parse_known_args(argv)
    if any(word.startswith("-") for word in extra):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.chapter is not None:
        from fwdtui.chapters import find_chapter

        try:
            args.chapter = find_chapter(args.chapter).ID  # unknown or unwritten ids fail here, with the fix
        except FwdtuiError as err:
            # The word may have been meant as a command: name those too.
            raise type(err)(err.message, f"{err.fix or ''} Commands: {', '.join(SUBCOMMANDS)}.".strip()) from None
    if extra:  # after the chapter check: `fwdtui tokenise TEXT` is a misspelt command, not two stray words
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.model:
        check_model_spec(args.model)
    from fwdtui.app import run_app

    run_app(chapter_id=args.chapter, model_spec=args.model, prompt=args.prompt)
    return 0


def _printable_streams() -> None:
    """Text that cannot be encoded (a lone surrogate from undecodable argv bytes, echoed in an error
    or a path) is printed as a backslash escape instead of raising UnicodeEncodeError mid-message."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass  # not a TextIOWrapper (replaced by a test or a tool): leave it as it is


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _printable_streams()
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
        print(f"error: {_one_line(err.message)}", file=sys.stderr)
        if err.fix:
            print(f"  fix: {_one_line(err.fix)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except MemoryError:
        print("error: This machine ran out of memory for that.", file=sys.stderr)
        print("  fix: Use a smaller model (gpt2 or smollm2-135m), a shorter prompt, or close other programs.",
              file=sys.stderr)
        return 2
    except OSError as err:
        # The disk or the system said no (a full disk, a folder we may not write, an I/O error) in a
        # place that has no message of its own: say what the system said, not a traceback.
        where = f" ({err.filename})" if err.filename else ""
        print(f"error: {_one_line(str(err.strerror or err))}{_one_line(where)}.", file=sys.stderr)
        print("  fix: Check the path, its permissions and the free space, then try again.", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
