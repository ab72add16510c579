"""Few-shot prompting a causal LM (CPM-LM): a few (input, output) lines, then a query.

    python examples/cpm_few_shot.py --dtype bfloat16     # CPM-LM 2.6B, every prompt
    python examples/cpm_few_shot.py --model path/to/preset --prompts capitals,translation
    # your own examples: a TSV of input<TAB>output lines, and the query
    python examples/cpm_few_shot.py --examples pairs.tsv --query 鸟 --separator " "

The built-in prompts are those of bert4keras' CPM-LM example
(`examples/basic_language_model_cpm_lm.py`; Su, kexue.fm/archives/7912): common-sense
facts (capitals), word translation, subject extraction and triple extraction. Each
prompt puts one example per line, `input SEPARATOR output`, and ends with the query
and the separator; the model's continuation up to the end of the line is its answer.
CPM's tokenizer writes the newline as the piece ▃, where generation stops; with a
tokenizer without a newline token (a WordPiece GPT-2) the continuation runs to the
end token or `--maxlen` and is cut at the first newline. Decoding is greedy (a beam of
one), so the answers are reproducible; CPM's answers as bert4keras reported them
(sampled, top-p 0.95) are in the comments of PROMPTS.

`--model` takes what `kerasformer.models.load` takes: a registered name (default
"cpm-lm", from the Hugging Face Hub, about 10 GB), an `hf://owner/repo` handle, or a
directory (a preset, a release directory, a Hugging Face directory; `--family` where
the directory does not say it). A prompt longer than the model's positions keeps its
last examples, as many as fit.
"""
import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import kerasformer as kf  # noqa: E402

# name -> (examples, query, separator); bert4keras' prompts, its reported answer after #.
PROMPTS = {
    "capitals": (  # 北京
        [("美国的首都是", "华盛顿"), ("法国的首都是", "巴黎"), ("日本的首都是", "东京")],
        "中国的首都是", ""),
    "translation": (  # bird
        [("狗", "dog"), ("猫", "cat"), ("猪", "pig")],
        "鸟", " "),
    "subject": (  # 杨振宁
        [("从1931年起，华罗庚在清华大学边学习边工作", "华罗庚"),
         ("在一间简陋的房间里，陈景润攻克了“哥德巴赫猜想”", "陈景润"),
         ("在这里，丘成桐得到IBM奖学金", "丘成桐")],
        "杨振宁在粒子物理学、统计力学和凝聚态物理等领域作出里程碑性贡献", " "),
    "triples": (  # 张红，体重，140斤
        [("姚明的身高是211cm，是很多人心目中的偶像。", "姚明，身高，211cm"),
         ("毛泽东是绍兴人，早年在长沙读书。", "毛泽东，出生地，绍兴"),
         ("虽然周杰伦在欧洲办的婚礼，但是他是土生土长的中国人", "周杰伦，国籍，中国"),
         ("小明出生于武汉，但是却不喜欢在武汉生成，长大后去了北京。", "小明，出生地，武汉"),
         ("吴亦凡是很多人的偶像，但是他却是加拿大人，另很多人失望", "吴亦凡，国籍，加拿大"),
         ("武耀的生日在5月8号，这一天，大家都为他庆祝了生日", "武耀，生日，5月8号"),
         ("《青花瓷》是周杰伦最得意的一首歌。", "周杰伦，作品，《青花瓷》"),
         ("北京是中国的首都。", "中国，首都，北京"),
         ("蒋碧的家乡在盘龙城，毕业后去了深圳工作。", "蒋碧，籍贯，盘龙城"),
         ("上周我们和王立一起去了他的家乡云南玩昨天才回到了武汉。", "王立，籍贯，云南"),
         ("昨天11月17号，我和朋友一起去了海底捞，期间服务员为我的朋友刘章庆祝了生日。",
          "刘章，生日，11月17号")],
        "张红的体重达到了140斤，她很苦恼。", "->"),
}


def few_shot_prompt(examples, query, separator=" "):
    """The prompt of `examples` (a list of `(input, output)`) and a `query`: one
    `input SEPARATOR output` line per example, then `query SEPARATOR`, whose line
    the model completes.

    >>> few_shot_prompt([("狗", "dog"), ("猫", "cat")], "鸟")
    '狗 dog\\n猫 cat\\n鸟 '
    """
    for item in examples:
        if len(item) != 2 or any("\n" in str(part) for part in item):
            raise ValueError(f"an example is an (input, output) pair without newlines, "
                             f"got {item!r}")
    if not str(query).strip() or "\n" in query:
        raise ValueError(f"the query must be one non-empty line, got {query!r}")
    lines = [f"{source}{separator}{target}" for source, target in examples]
    return "\n".join(lines + [f"{query}{separator}"])


def fitting_prompt(task, examples, query, separator, maxlen):
    """`(prompt, examples used)`: the last examples, as many as leave `maxlen` positions
    for the answer."""
    limit = task.transformer.max_positions()
    for start in range(len(examples) + 1):
        prompt = few_shot_prompt(examples[start:], query, separator)
        length = len(task.tokenizer.encode(prompt)[0])
        if limit is None or length + maxlen <= limit:
            return prompt, len(examples) - start
    raise ValueError(f"the query alone is too long for the model's {limit} positions")


def answer(task, prompt, maxlen=16):
    """The greedy continuation of `prompt` up to the end of its line: generation stops
    at the newline token where the tokenizer has one (CPM's ▃), else at the end token
    or `maxlen`, and the text is cut at its first newline."""
    end = "newline" if getattr(task.tokenizer, "newline_id", None) is not None else None
    (text,) = task.generate(prompt, beam=1, maxlen=maxlen, end=end)
    return text.split("\n")[0].strip()


def read_examples(path):
    examples = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            source, tab, target = line.partition("\t")
            if not tab:
                sys.exit(f"{path}:{number}: expected input<TAB>output, got {line!r}")
            examples.append((source, target))
    if not examples:
        sys.exit(f"{path}: no examples")
    return examples


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cpm-lm",
                        help="a name, hf:// handle or directory (default: cpm-lm)")
    parser.add_argument("--family", help="the family of a directory that does not say it")
    parser.add_argument("--dtype", help="load in this dtype, e.g. bfloat16 (CPM-LM: 5.4 GB "
                                        "instead of 10.8 GB)")
    parser.add_argument("--prompts", default=",".join(PROMPTS),
                        help=f"comma-separated built-in prompts ({', '.join(PROMPTS)}); "
                             "'' for none")
    parser.add_argument("--examples", metavar="TSV", help="input<TAB>output lines")
    parser.add_argument("--query", help="the query of --examples")
    parser.add_argument("--separator", default=" ", help="between input and output (' ')")
    parser.add_argument("--maxlen", type=int, default=16, help="most tokens of an answer")
    args = parser.parse_args(argv)
    args.prompts = [name for name in args.prompts.split(",") if name]
    unknown = [name for name in args.prompts if name not in PROMPTS]
    if unknown:
        parser.error(f"unknown prompt(s) {', '.join(unknown)}: choose from {', '.join(PROMPTS)}")
    if (args.examples is None) != (args.query is None):
        parser.error("--examples and --query go together")
    if args.maxlen < 1:
        parser.error("--maxlen must be positive")
    if not args.prompts and args.examples is None:
        parser.error("no prompts: name some with --prompts or give --examples and --query")
    return args


def main(argv=None):
    args = parse_arguments(argv)
    prompts = {name: PROMPTS[name] for name in args.prompts}
    if args.examples:
        prompts["yours"] = (read_examples(args.examples), args.query, args.separator)
    options = {key: value for key, value in (("family", args.family), ("dtype", args.dtype))
               if value}
    try:
        task = kf.models.load(args.model, **options)
    except (ValueError, LookupError, OSError, ImportError) as error:
        sys.exit(f"--model {args.model}: {error}")
    if task.task != "causal_lm":
        sys.exit(f"--model {args.model} is a {task.task} model, not a causal language model")
    for name, (examples, query, separator) in prompts.items():
        try:
            prompt, used = fitting_prompt(task, examples, query, separator, args.maxlen)
        except ValueError as error:
            print(f"== {name} ==\n({error})\n")
            continue
        note = "" if used == len(examples) else f" ({used} of {len(examples)} examples fit)"
        print(f"== {name} =={note}")
        print(f"{prompt}\n\u2192 {answer(task, prompt, args.maxlen)}\n")


if __name__ == "__main__":
    main()
