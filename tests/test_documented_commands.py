"""Every `python samples/cell/*.py ...` command in the READMEs parses with its script's flags.

The recipes themselves run as written in their own tests (at small sizes);
this one guards all of them, also the ones that need Kaggle data or a GPU to
run (e.g. "On the Kaggle data"), against a renamed or removed flag.
"""

import os
import re
import shlex

import pytest
from helpers import load_sample_script

# Backend-independent: README command lines parsed by the scripts' argparse; no model is built.
pytestmark = pytest.mark.backend_independent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", os.path.join("samples", "cell", "README.md")]
PARSED = ("train", "predict", "pseudo_label")


def documented_commands():
    """(document, command words) of each `python[3] samples/cell/X.py` line in bash blocks."""
    found = []
    for doc in DOCS:
        text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #", 1)[0].strip()
                for part in line.split("&&"):
                    words = shlex.split(part)
                    if len(words) > 1 and words[0] in ("python", "python3") \
                            and re.fullmatch(r"samples/cell/\w+\.py", words[1]):
                        found.append((doc, words[1:]))
    return found


load_script = load_sample_script


def test_the_documents_have_commands_of_each_script():
    scripts = {os.path.basename(words[0])[:-3] for _, words in documented_commands()}
    assert set(PARSED) <= scripts, scripts


@pytest.mark.parametrize("doc,words", documented_commands(),
                         ids=lambda v: v if isinstance(v, str) else " ".join(v)[:60])
def test_documented_command_parses(doc, words):
    name = os.path.basename(words[0])[:-3]
    assert name in PARSED, f"{doc}: no parser known for {words[0]}"
    argv = [w.replace("$DATA", "/data").replace("~", "/home") for w in words[1:]]
    args = load_script(name).build_parser().parse_args(argv)
    assert args is not None
    if name == "train" and "--weights" in argv:
        # a path given to the older --weights flag is refused at run time: the documents
        # must use --init / --resume for paths
        assert argv[argv.index("--weights") + 1] in ("none", "coco", "imagenet", "last")
