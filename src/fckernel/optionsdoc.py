"""OUTPUT/OPTIONS.md: every requested option documented from the tree's own help."""

from __future__ import annotations

from fckernel.kconfig import KconfigTree
from fckernel.verify import Outcome


def options_markdown(outcomes: list[Outcome], tree: KconfigTree, title: str) -> str:
    """Format each request's value, status and Kconfig help text as Markdown."""
    lines = [f"# {title}", ""]
    lines += [
        "Options this kernel was asked for, with what Kconfig made of them and",
        "the help text of the kernel tree they were built from.",
        "",
    ]
    for outcome in outcomes:
        lines += _section(outcome, tree)
    return "\n".join(lines)


def _section(outcome: Outcome, tree: KconfigTree) -> list[str]:
    symbol = outcome.request.symbol
    lines = [f"## CONFIG_{symbol}", ""]
    definition = tree.symbol(symbol)
    prompts = [p.text for p in definition.prompts] if definition else []
    if prompts:
        lines += [f"*{prompts[0]}*", ""]
    lines += [
        f"- requested: `{outcome.request.value}` ({outcome.request.origin})",
        f"- final: `{outcome.final if outcome.final is not None else 'n'}`",
        f"- status: {outcome.status}"
        + (f": {outcome.reason}" if outcome.reason else ""),
        "",
    ]
    help_text = _help(tree, symbol)
    if help_text:
        lines += [_indent(help_text), ""]
    return lines


def _help(tree: KconfigTree, symbol: str) -> str:
    definition = tree.symbol(symbol)
    if definition is None:
        return ""
    texts = [d.help.strip() for d in definition.definitions if d.help.strip()]
    return texts[0] if texts else ""


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" if line else "" for line in text.splitlines())
