#!/usr/bin/env python3
"""Renders a chat template as Hugging Face transformers' apply_chat_template does (Jinja2 with
trim_blocks, lstrip_blocks, loop controls, json.dumps for tojson, raise_exception), to make
the expected strings of tests/test_chat_template.cpp.

Usage: render_reference.py TEMPLATE.jinja CASE.json
CASE.json: {"messages": [...], "tools": [...] (optional), "bos_token": "", "eos_token": "",
            "add_generation_prompt": true, "enable_thinking": false (optional)}
Prints the rendered text as a JSON string (so every byte is visible)."""
import json
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        source = f.read()
    if source.endswith("\n"):
        source = source[:-1]  # as the test reads the fixtures
    with open(sys.argv[2], encoding="utf-8") as f:
        case = json.load(f)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    kwargs = {k: v for k, v in case.items() if k != "messages"}
    print(json.dumps(env.from_string(source).render(messages=case["messages"], **kwargs)))


if __name__ == "__main__":
    main()
